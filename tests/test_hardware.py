"""Hardware detection: the real machine, records from files, third-party detection hooks."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

from plugin_registry.errors import ConfigurationError
from plugin_registry.resolver.hardware import (
    Device,
    Hardware,
    detect_hardware,
)
from tests._support.errors import raises
from tests._support.packages import ACCELERATOR
from tests._support.resolver_cases import machine
from tests._support.support import Venv
from tests.conftest import wheel


def _installed(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def test_detects_this_machine() -> None:
    import torch

    hw = detect_hardware(refresh=True)
    assert hw.torch == importlib.metadata.version("torch")
    assert hw.version("bitsandbytes") == _installed("bitsandbytes")
    assert hw.version("transformer_engine") is None  # not installable here
    assert hw.count("cuda") == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert hw.cpu_cores >= 1
    assert hw.cpu_capability == torch.backends.cpu.get_cpu_capability()
    assert detect_hardware() is hw  # once per process
    assert "CPU cores" in hw.summary()


def test_detection_imports_no_plugin_library() -> None:
    code = (
        "import sys, json; from plugin_registry.resolver.hardware import detect_hardware; "
        "hw = detect_hardware(); "
        "print(json.dumps([m for m in ('bitsandbytes', 'deepspeed', 'transformer_engine', "
        "'torch_xla', 'builtin_plugins.precision.bitsandbytes') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == []


def test_a_written_record_replaces_detection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    planned = machine(cuda=4, gpu="a100")
    path = tmp_path / "node.json"
    planned.dump(path)
    assert Hardware.load(path) == planned
    monkeypatch.setenv("PLUGIN_REGISTRY_HARDWARE", str(path))
    assert detect_hardware() == planned
    assert detect_hardware().devices_of("cuda")[0].label() == (
        "CUDA device 0 (NVIDIA A100-SXM4-40GB, compute capability 8.0)"
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"cpu_cores": 0}, "'cpu_cores' must be a positive integer"),
        ({"cpu_cores": 2, "gpus": []}, "unknown field(s) ['gpus']"),
        ({"cpu_cores": 2, "devices": [{"kind": "cuda"}]}, "a device entry is malformed"),
        ({"cpu_cores": 2, "format": 99}, "write it again"),
        ([], "is a JSON object"),
    ],
)
def test_bad_records_say_what_is_wrong(data: object, message: str) -> None:
    with raises(ConfigurationError, "hardware") as e:
        Hardware.from_dict(data)  # type: ignore[arg-type]
    assert message in str(e.value)


def test_missing_file_says_how_to_write_one(tmp_path: Path) -> None:
    with raises(ConfigurationError, "hardware", match="plugin-registry hardware --json"):
        Hardware.load(tmp_path / "nope.json")


def test_device_properties_are_strings() -> None:
    device = Device("cuda", 0, "x", ("float32",), {"compute_capability": 9.0})  # type: ignore[dict-item]
    assert device.properties == {"compute_capability": "9.0"}


# -- third-party detection ------------------------------------------------------


@pytest.fixture(scope="module")
def accel_venv(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Venv:
    venv = Venv(tmp_path_factory.mktemp("accel") / "venv")
    venv.install(*(wheel(wheelhouse, d) for d in ACCELERATOR))
    return venv


_RESOLVE = """
import json, warnings
from plugin_registry.resolver.hardware import detect_hardware
from plugin_registry.resolver import resolve, ResolutionError
hw = detect_hardware()
out = {"devices": [d.accelerator for d in hw.devices], "problems": list(hw.problems),
       "sources": list(hw.sources)}
try:
    res = resolve(**json.loads(ARGS))
    out["names"] = res.names()
    out["rejected"] = {c.name: list(c.reasons) for c in res.candidates["precision"]
                       if not c.accepted}
except ResolutionError as exc:
    out["error"] = str(exc)
print(json.dumps(out))
"""


def _resolve_in(venv: Venv, args: dict[str, object], **env: str) -> dict[str, object]:
    result: dict[str, object] = venv.json(_RESOLVE.replace("ARGS", repr(json.dumps(args))), **env)
    return result


def test_accelerator_package_adds_devices_and_plugins(accel_venv: Venv) -> None:
    out = _resolve_in(accel_venv, {"precision": "bf16-mixed"}, SIM_NPU_DEVICES="2")
    assert out["devices"] == ["npu", "npu"]
    assert "sim-npu:plugins" in out["sources"]  # type: ignore[operator]
    # the failing hook of another package is reported, not fatal
    assert any("flaky-detect" in p and "driver not loaded" in p for p in out["problems"])  # type: ignore[union-attr]
    assert out["names"] == {
        "precision": "npu-bf16",
        "checkpoint_io": "npu-io",
        "cluster_environment": "lightning",
    }


def test_accelerator_constraints_reject_old_devices(accel_venv: Venv) -> None:
    out = _resolve_in(
        accel_venv, {"precision": "bf16-mixed"}, SIM_NPU_DEVICES="1", SIM_NPU_GENERATION="2"
    )
    assert "requires generation >=3, found 2 on NPU device 0 (SimNPU)" in out["error"]  # type: ignore[operator]
    out = _resolve_in(
        accel_venv,
        {"precision": "bf16-mixed", "accelerator": "cpu"},
        SIM_NPU_DEVICES="1",
        SIM_NPU_GENERATION="2",
    )
    assert out["names"]["precision"] == "bf16-mixed"  # type: ignore[index]


def test_vendor_plugin_wins_on_the_hardware_it_targets(accel_venv: Venv, tmp_path: Path) -> None:
    h100, l4 = tmp_path / "h100.json", tmp_path / "l4.json"
    machine(cuda=8, gpu="h100").dump(h100)
    machine(cuda=1, gpu="l4").dump(l4)
    args = {"precision": "transformer-engine", "hardware": str(h100)}
    assert _resolve_in(accel_venv, args)["names"]["precision"] == "vendor-fp8"  # type: ignore[index]
    out = _resolve_in(accel_venv, {**args, "hardware": str(l4)})
    assert out["names"]["precision"] == "transformer-engine"  # type: ignore[index]
    assert out["rejected"]["vendor-fp8"] == [  # type: ignore[index]
        "requires compute_capability >=9.0, found 8.9 on CUDA device 0 (NVIDIA L4, compute "
        "capability 8.9)"
    ]
    # the user can turn the vendor's claim down without code
    out = _resolve_in(accel_venv, args, PLUGIN_REGISTRY_PRIORITY="vendor-fp8=-1")
    assert out["names"]["precision"] == "transformer-engine"  # type: ignore[index]
    out = _resolve_in(accel_venv, args, PLUGIN_REGISTRY_PREFER="transformer-engine=plugin-registry")
    assert out["names"]["precision"] == "vendor-fp8"  # prefer picks a provider of one name only


def test_version_scan_agrees_with_importlib_metadata() -> None:
    """The resolver's own dist-info scan sees what importlib.metadata sees."""
    from plugin_registry.names import normalize_distribution
    from plugin_registry.requirements import forget_versions, installed_versions

    forget_versions()
    ours = installed_versions()
    seen: set[str] = set()
    for dist in importlib.metadata.distributions():
        name = normalize_distribution(dist.metadata["Name"])
        if name in seen:
            continue  # the first on sys.path wins, as in both
        seen.add(name)
        assert ours.get(name) == dist.version, name
    assert len(ours) == len(seen)
