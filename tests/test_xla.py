"""XLACheckpointIO and XLAEnvironment on a real torch_xla runtime (PJRT on the CPU).

torch_xla runs here only beside its own torch (2.9): ``nox -s xla`` builds that
environment and runs this file there (with PJRT_DEVICE=CPU). Elsewhere it skips.
One process only: a 2-device CPU client under xmp.spawn hangs in torch_xla's own
all-reduce rendezvous here, so the multi-process path needs a TPU host.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

torch_xla = pytest.importorskip(
    "torch_xla",
    reason="torch_xla is not importable here (it needs its own torch 2.9): run `nox -s xla`",
)

import torch  # noqa: E402

import plugin_registry as pr  # noqa: E402
from builtin_plugins.checkpoint_io.xla_io import XLACheckpointIO  # noqa: E402
from builtin_plugins.environments.xla import XLAEnvironment  # noqa: E402


@pytest.fixture(autouse=True)
def _pjrt_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PJRT_DEVICE", os.environ.get("PJRT_DEVICE", "CPU"))


def test_xla_plugins_are_listed_available() -> None:
    for kind in ("checkpoint_io", "cluster_environment"):
        record = pr.get(f"{kind}/xla")
        assert record.available, record.unavailable_reason


def test_xla_checkpoint_moves_tensors_to_cpu_and_writes_atomically(tmp_path: Path) -> None:
    io = pr.load("checkpoint_io/xla")
    assert isinstance(io, XLACheckpointIO)
    device = torch_xla.device()
    state = {
        "w": torch.arange(6.0, device=device) * 2,
        "nested": {"b": torch.ones(2, device=device)},
        "step": 5,
    }
    path = tmp_path / "ck.pt"
    io.save_checkpoint(state, path)
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]
    raw = torch.load(path, weights_only=True)
    assert raw["w"].device.type == "cpu" and torch.equal(raw["w"], torch.arange(6.0) * 2)
    assert torch.equal(raw["nested"]["b"], torch.ones(2)) and raw["step"] == 5
    back = io.load_checkpoint(path)
    assert torch.equal(back["w"], raw["w"])


def test_async_xla(tmp_path: Path) -> None:
    aio = pr.load("async-xla")
    assert isinstance(aio.checkpoint_io, XLACheckpointIO)
    t = torch.full((3,), 7.0, device=torch_xla.device())
    aio.save_checkpoint({"t": t}, tmp_path / "a.pt")
    aio.teardown()
    assert torch.equal(torch.load(tmp_path / "a.pt", weights_only=True)["t"], torch.full((3,), 7.0))


def test_xla_environment_reads_the_runtime() -> None:
    assert pr.detect_environment().name == "xla"
    env = pr.load("cluster_environment/xla")
    assert isinstance(env, XLAEnvironment)
    from torch_xla import runtime as xr

    assert (env.world_size(), env.global_rank(), env.local_rank(), env.node_rank()) == (
        xr.world_size(),
        xr.global_ordinal(),
        xr.local_ordinal(),
        xr.host_index(),
    )
    assert env.creates_processes_externally is False
    with pytest.raises(NotImplementedError, match="own rendezvous"):
        _ = env.main_address


@pytest.mark.parametrize(
    ("name", "dtype"), [("xla-32-true", "float32"), ("xla-bf16-true", "bfloat16")]
)
def test_xla_precision_trains_on_the_xla_device(name: str, dtype: str) -> None:
    from builtin_plugins.precision.xla import XLAPrecision
    from plugin_registry.testing.reference_loop import train

    plugin = pr.load(name)
    assert isinstance(plugin, XLAPrecision)
    result = train(plugin, steps=150, device=torch_xla.device())
    plugin.teardown()
    assert sum(result.losses[-10:]) / 10 < 0.15
    assert result.dtypes["params"] == [dtype] and result.dtypes["activations"] == [dtype]


def test_xla_precision_sets_and_restores_its_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XLA_USE_BF16", raising=False)
    plugin = pr.load("precision/xla-bf16-true")
    assert os.environ["XLA_USE_BF16"] == "1"
    plugin.teardown()
    assert "XLA_USE_BF16" not in os.environ
    monkeypatch.setenv("XLA_USE_BF16", "0")
    pr.load("precision/xla-bf16-true").teardown()
    assert os.environ["XLA_USE_BF16"] == "0", "a value the user set is put back"
    with pytest.raises(pr.PluginLoadError, match="choose one of 32-true, 16-true, bf16-true"):
        pr.load("precision/xla", precision="16-mixed")


def test_hardware_detection_sees_the_xla_devices_and_the_resolver_uses_them() -> None:
    """torch_xla reports its PJRT devices; resolve() then picks the XLA plugins."""
    import torch_xla.runtime as xr

    from plugin_registry.resolver import resolve
    from plugin_registry.resolver.hardware import detect_hardware
    from plugin_registry.resolver.preferences import Preferences

    hw = detect_hardware(refresh=True)
    assert "torch_xla" in hw.sources
    assert hw.count("xla") == xr.global_runtime_device_count() >= 1
    assert hw.devices_of("xla")[0].properties["device_type"] == xr.device_type()
    res = resolve(precision="bf16-true", preferences=Preferences())
    assert res.settings.accelerator == "xla"
    assert res.names() == {
        "precision": "xla-bf16-true",
        "checkpoint_io": "xla",
        "cluster_environment": "xla",
    }
    precision, checkpoint_io, environment = res.load()
    assert type(precision).__name__ == "XLAPrecision"
    assert type(checkpoint_io).__name__ == "XLACheckpointIO"
    assert type(environment).__name__ == "XLAEnvironment"
    assert environment.world_size() >= 1


def test_lightnings_xla_strategy_takes_the_adapter_and_it_trains() -> None:
    """Lightning's XLA accelerator looks for a TPU (not the PJRT CPU runtime), so its
    strategy cannot run a loop here: the strategy takes the adapter, and the adapter
    makes the calls Fabric's XLA strategy makes, on the real XLA device."""
    pytest.importorskip("lightning", reason="lightning is not installed (the [lightning] extra)")
    from lightning.fabric.plugins.precision import XLAPrecision as Theirs
    from lightning.fabric.strategies import XLAStrategy

    from plugin_registry.lightning import RegistryXLAPrecision, registry_plugins
    from plugin_registry.testing.reference_loop import train

    adapter = registry_plugins(["xla-bf16-true"], strategy="xla")[0]
    assert isinstance(adapter, RegistryXLAPrecision) and isinstance(adapter, Theirs)
    assert adapter._desired_dtype == torch.bfloat16  # what Lightning's XLA-FSDP reads
    strategy = XLAStrategy(precision=adapter)
    assert strategy.precision is adapter
    result = train(adapter, steps=150, device=torch_xla.device())  # type: ignore[arg-type]
    adapter.teardown()
    assert sum(result.losses[-10:]) / 10 < 0.15
    assert result.dtypes["params"] == ["bfloat16"]
