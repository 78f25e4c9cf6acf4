"""Tests a plugin author keeps: the records, the lightness, the plugins themselves."""

from __future__ import annotations

import subprocess
import sys

import pytest

import plugin_registry as pr


def test_names_resolve_to_acme() -> None:
    assert pr.get("acme").name == "acme-scheduler"
    assert pr.get("acme-compressed-lzma").distribution == "acme-plugins"


def test_registration_module_is_light() -> None:
    code = (
        "import sys, acme_plugins.registration; "
        "print(sorted(m for m in ('torch', 'acme_plugins.environment', "
        "'acme_plugins.compressed_io') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("codec", ["gzip", "bz2", "lzma"])
def test_checkpoint_round_trip(tmp_path, codec: str) -> None:
    import torch

    io = pr.load(f"acme-compressed-{codec}")
    state = {"w": torch.arange(10.0), "step": 3}
    io.save_checkpoint(state, tmp_path / "ckpt.pt")
    back = io.load_checkpoint(tmp_path / "ckpt.pt")
    assert torch.equal(back["w"], state["w"]) and back["step"] == 3


def test_environment_reads_acme_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_JOB_ID", "7")
    monkeypatch.setenv("ACME_RANK", "3")
    monkeypatch.setenv("ACME_WORLD_SIZE", "4")
    env = pr.load("acme")
    assert env.detect() and env.global_rank() == 3 and env.world_size() == 4
    monkeypatch.setenv("ACME_RANK", "x")
    with pytest.raises(RuntimeError, match="ACME_RANK='x' is not an integer"):
        env.global_rank()
