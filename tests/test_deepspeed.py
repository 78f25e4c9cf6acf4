"""DeepSpeedPrecision with real DeepSpeed engines on the CPU (DS_ACCELERATOR=cpu, gloo).

Each run is a subprocess (DeepSpeed sets up torch.distributed for the process): one
process, and two under torchrun. The first engine on a machine JIT-builds a
communication op (~35 s, cached in ~/.cache/torch_extensions).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import plugin_registry as pr

pytest.importorskip(
    "deepspeed",
    reason="DeepSpeed is not installed: .ci/setup installs it "
    "(DS_BUILD_OPS=0 pip install --no-build-isolation deepspeed)",
)

from tests._support.support import REPO, free_port

WORKER = str(REPO / "tests" / "workers" / "deepspeed_worker.py")


def run(tmp_path: Path, precision: str, stage: int, processes: int = 1) -> dict[str, Any]:
    out = tmp_path / "result.json"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    }
    env.update(MASTER_PORT=str(free_port()))
    if processes == 1:
        cmd = [sys.executable, WORKER, str(out), precision, str(stage)]
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            str(processes),
            WORKER,
            str(out),
            precision,
            str(stage),
        ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def test_config_fragments() -> None:
    assert pr.load("deepspeed").config_fragment() == {}
    assert pr.load("deepspeed-bf16-mixed").config_fragment() == {"bf16": {"enabled": True}}
    fp16 = pr.load("deepspeed-16-mixed").config_fragment()["fp16"]
    assert fp16["enabled"] and fp16["loss_scale"] == 0  # dynamic loss scaling
    with pytest.raises(pr.PluginLoadError, match="choose one of 32-true"):
        pr.load("precision/deepspeed", precision="64-true")


@pytest.mark.parametrize(
    ("precision", "stage", "dtype"),
    [("32-true", 0, "float32"), ("bf16-mixed", 1, "bfloat16"), ("bf16-true", 2, "bfloat16")],
)
def test_one_process_trains(tmp_path: Path, precision: str, stage: int, dtype: str) -> None:
    r = run(tmp_path, precision, stage)
    assert r["engine"] == "DeepSpeedEngine" and r["world_size"] == 1
    assert r["losses"][0] > 0.4 and sum(r["losses"][-10:]) / 10 < 0.15
    assert r["dtypes"]["params"] == [dtype] and r["dtypes"]["activations"] == [dtype]


@pytest.mark.parametrize(("precision", "stage"), [("bf16-mixed", 2), ("32-true", 3)])
def test_two_processes_under_torchrun(tmp_path: Path, precision: str, stage: int) -> None:
    r = run(tmp_path, precision, stage, processes=2)
    assert r["world_size"] == 2
    assert sum(r["losses"][-10:]) / 10 < 0.15


def test_fp16_on_the_cpu(tmp_path: Path) -> None:
    """DeepSpeed 0.19 trains fp16 on a CPU whose oneDNN has float16 matmuls (float16
    parameters and activations, dynamic loss scaling); other CPUs, and earlier releases,
    which the [deepspeed] extra still admits, refuse it."""
    from importlib.metadata import version

    import torch
    from packaging.version import Version

    supported = bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())  # what DeepSpeed asks
    print(f"deepspeed {version('deepspeed')}, oneDNN float16 on this CPU: {supported}")
    if Version(version("deepspeed")) < Version("0.19") or not supported:
        with pytest.raises(AssertionError, match="fp16 is not supported"):
            run(tmp_path, "16-mixed", 0)
        return
    r = run(tmp_path, "16-mixed", 0)
    assert r["dtypes"]["params"] == ["float16"] and r["dtypes"]["activations"] == ["float16"]
    assert sum(r["losses"][-10:]) / 10 < 0.15


def test_fp16_on_cuda(tmp_path: Path) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here: DeepSpeed fp16 (16-mixed) runs on the GPU machine")
    r = run(tmp_path, "16-mixed", 1)
    assert sum(r["losses"][-10:]) / 10 < 0.15
