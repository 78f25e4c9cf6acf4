"""The package's own tests: registry checks, then each plugin doing its job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import plugin_registry as pr
from plugin_registry.kinds.checkpoint_io import CheckpointError
from plugin_registry.testing import assert_valid_package
from plugin_registry.testing.reference_loop import train


def test_package_is_a_valid_plugin_package() -> None:
    assert_valid_package("acme-plugins")


def test_registration_module_is_light() -> None:
    code = (
        "import sys, acme_plugins.registration; "
        "print(sorted(m for m in ('torch', 'acme_plugins.environment', "
        "'acme_plugins.compressed_io', 'acme_plugins.precision') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_names_resolve_to_this_package() -> None:
    assert pr.get("acme").name == "acme-scheduler"  # an alias
    assert pr.get("acme-compressed-lzma").distribution == "acme-plugins"


def test_precision_trains_in_bfloat16() -> None:
    precision = pr.load("acme-bf16")
    result = train(precision, steps=150)
    assert result.dtypes["activations"] == ["bfloat16"]
    assert sum(result.losses[-10:]) / 10 < result.losses[0]


@pytest.mark.parametrize("codec", ["gzip", "bz2", "lzma"])
def test_checkpoint_round_trips_and_refuses_arbitrary_objects(tmp_path: Path, codec: str) -> None:
    io = pr.load(f"acme-compressed-{codec}")
    state = {"weight": torch.randn(4, 4), "step": 3}
    io.save_checkpoint(state, tmp_path / "a.ckpt")
    loaded = io.load_checkpoint(tmp_path / "a.ckpt")
    assert torch.equal(loaded["weight"], state["weight"]) and loaded["step"] == 3
    io.save_checkpoint({"obj": Path("x")}, tmp_path / "b.ckpt")
    with pytest.raises(Exception, match=r"(?i)weights_only|unsupported global"):
        io.load_checkpoint(tmp_path / "b.ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ckpt", "b.ckpt"]  # no temp files


def test_checkpoint_files_get_the_usual_mode_and_clear_errors(tmp_path: Path) -> None:
    io = pr.load("acme-compressed-gzip")
    umask = os.umask(0o022)
    try:
        io.save_checkpoint({"step": 1}, tmp_path / "a.ckpt")
    finally:
        os.umask(umask)
    assert (tmp_path / "a.ckpt").stat().st_mode & 0o777 == 0o644  # as open() would give
    with pytest.raises(FileNotFoundError, match="does not exist") as missing:
        io.load_checkpoint(tmp_path / "missing.ckpt")
    assert isinstance(missing.value, CheckpointError) and missing.value.reason == "not-found"
    (tmp_path / "torn.ckpt").write_bytes((tmp_path / "a.ckpt").read_bytes()[:10])
    with pytest.raises(CheckpointError, match=r"torn\.ckpt"):
        io.load_checkpoint(tmp_path / "torn.ckpt")
    with pytest.raises(CheckpointError, match="cannot serialise"):
        io.save_checkpoint({"bad": lambda: None}, tmp_path / "a.ckpt")
    assert io.load_checkpoint(tmp_path / "a.ckpt") == {"step": 1}  # the previous one is intact


def test_environment_reads_the_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    env_cls = type(pr.load("acme"))
    assert not env_cls.detect()
    monkeypatch.setenv("ACME_JOB_ID", "7")
    monkeypatch.setenv("ACME_WORLD_SIZE", "4")
    monkeypatch.setenv("ACME_RANK", "2")
    env = pr.load("acme")
    assert env_cls.detect()
    assert (env.world_size(), env.global_rank(), env.local_rank()) == (4, 2, 0)
    assert pr.detect_environment().name == "acme-scheduler"
    monkeypatch.setenv("ACME_RANK", "x")
    with pytest.raises(ValueError, match=r"ACME_RANK='x' is not an integer"):
        env.global_rank()
    monkeypatch.delenv("ACME_WORLD_SIZE")
    # A KeyError, as Lightning's os.environ[...] raises, and a ClusterEnvironmentError.
    with pytest.raises(KeyError, match=r"ACME_WORLD_SIZE is not set") as unset:
        env.world_size()
    assert isinstance(unset.value, pr.ClusterEnvironmentError)
