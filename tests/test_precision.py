"""The torch-native precision plugins train for real, in the dtypes they promise."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import plugin_registry as pr
from builtin_plugins.precision.double import DoublePrecision
from builtin_plugins.precision.fsdp import FSDPPrecision
from builtin_plugins.precision.half import HalfPrecision
from builtin_plugins.precision.mixed import MixedPrecision
from plugin_registry.kinds.precision import Precision
from plugin_registry.testing.reference_loop import train
from tests._support.support import REPO

# name -> (class, params, grads, activations)
PROMISES = {
    "32-true": (Precision, "float32", "float32", "float32"),
    "64-true": (DoublePrecision, "float64", "float64", "float64"),
    "16-true": (HalfPrecision, "float16", "float16", "float16"),
    "bf16-true": (HalfPrecision, "bfloat16", "bfloat16", "bfloat16"),
    "16-mixed": (MixedPrecision, "float32", "float32", "float16"),
    "bf16-mixed": (MixedPrecision, "float32", "float32", "bfloat16"),
}


@pytest.mark.parametrize("name", PROMISES)
def test_each_plugin_trains_in_the_dtypes_it_promises(name: str) -> None:
    cls, params, grads, activations = PROMISES[name]
    plugin = pr.load(f"precision/{name}")
    assert type(plugin) is cls and plugin.precision == name
    before = torch.get_default_dtype()
    result = train(plugin, steps=300)
    assert torch.get_default_dtype() == before
    first, last = result.losses[0], sum(result.losses[-10:]) / 10
    assert first > 0.4 and last < 0.15, (first, last)
    assert result.dtypes["params"] == [params]
    assert result.dtypes["grads"] == [grads]
    assert result.dtypes["activations"] == [activations]
    assert result.dtypes["loss"] == [str(before).removeprefix("torch.")], "outputs come back"


@pytest.mark.parametrize("name", ["64-true", "16-true", "bf16-true", "fsdp-bf16-true"])
def test_default_dtype_contexts_restore_even_after_an_error(name: str) -> None:
    plugin = pr.load(name)
    before = torch.get_default_dtype()
    for context in (plugin.tensor_init_context, plugin.module_init_context, plugin.forward_context):
        with pytest.raises(RuntimeError, match="boom"), context():
            assert torch.get_default_dtype() != before
            assert torch.ones(1).dtype != before
            raise RuntimeError("boom")
        assert torch.get_default_dtype() == before


Pair = collections.namedtuple("Pair", "x label")


@pytest.mark.parametrize("name", ["64-true", "16-true", "bf16-mixed", "fsdp-16-true"])
def test_convert_input_casts_floating_tensors_only(name: str) -> None:
    plugin = pr.load(name)
    batch = {
        "x": torch.ones(2),
        "ids": torch.arange(3),
        "mask": torch.tensor([True]),
        "nested": [Pair(torch.zeros(1, dtype=torch.float64), torch.tensor([1])), "text"],
    }
    out = plugin.convert_input(batch)
    target = out["x"].dtype
    assert target != torch.float32 or name == "fsdp-32-true"
    assert out["ids"].dtype == torch.int64 and out["mask"].dtype == torch.bool
    assert isinstance(out["nested"][0], Pair) and out["nested"][0].x.dtype == target
    assert out["nested"][0].label.dtype == torch.int64 and out["nested"][1] == "text"
    back = plugin.convert_output({"y": torch.ones(2, dtype=target), "ids": torch.arange(2)})
    assert back["y"].dtype == torch.get_default_dtype() and back["ids"].dtype == torch.int64


def test_16_mixed_scaler_skips_non_finite_steps_and_keeps_its_state() -> None:
    # A huge initial scale overflows float16 gradients: the scaler must skip those
    # steps (leaving the weights alone), lower the scale, and still train.
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40)
    plugin = pr.load("16-mixed", device="cpu", scaler=scaler)
    assert plugin.scaler is scaler
    result = train(plugin, steps=150)
    assert result.skipped_steps >= 5
    assert sum(result.losses[-10:]) / 10 < 0.15
    state = plugin.state_dict()
    assert state["scale"] < 2.0**40 and "_growth_tracker" in state
    fresh = pr.load("16-mixed", device="cpu")
    fresh.load_state_dict(state)
    assert fresh.scaler.get_scale() == plugin.scaler.get_scale()


def test_skipped_step_leaves_the_weights_unchanged() -> None:
    plugin = MixedPrecision(
        "16-mixed", device="cpu", scaler=torch.amp.GradScaler("cpu", init_scale=2.0**60)
    )
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    with plugin.forward_context():
        loss = model(torch.ones(2, 4) * 1e4).sum()
    plugin.backward(loss, model)
    plugin.optimizer_step(opt)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert plugin.scaler.get_scale() < 2.0**60


def test_unscale_gradients_before_clipping() -> None:
    plugin = MixedPrecision(
        "16-mixed", device="cpu", scaler=torch.amp.GradScaler("cpu", init_scale=256.0)
    )
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with plugin.forward_context():
        loss = model(torch.randn(4, 8)).pow(2).mean()
    plugin.backward(loss, model)
    scaled = [p.grad.clone() for p in model.parameters()]
    scale = plugin.scaler.get_scale()
    plugin.unscale_gradients(opt)
    for s, p in zip(scaled, model.parameters(), strict=True):
        assert torch.allclose(s / scale, p.grad)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.01)
    plugin.optimizer_step(opt)  # unscale_ already done: the scaler does not unscale twice


@pytest.mark.parametrize("plugin_class", [MixedPrecision, "fsdp"])
@pytest.mark.parametrize("optimizer", ["AdamW", "Adam"])
def test_16_mixed_steps_a_fused_optimizer(plugin_class: Any, optimizer: str) -> None:
    """Lightning steps fused optimizers through the scaler (the default choice on GPUs); only
    unscaling before clipping is impossible for them, since they unscale inside their step."""
    if plugin_class == "fsdp":
        from builtin_plugins.precision.fsdp import FSDPPrecision as plugin_class
    torch.manual_seed(0)
    plugin = plugin_class("16-mixed", device="cpu")
    model = torch.nn.Linear(4, 4)
    opt = getattr(torch.optim, optimizer)(model.parameters(), lr=0.01, fused=True)
    assert opt._step_supports_amp_scaling
    before = model.weight.detach().clone()
    for _ in range(3):
        with plugin.forward_context():
            loss = model(torch.randn(8, 4)).float().pow(2).mean()
        plugin.backward(loss, model)
        plugin.optimizer_step(opt)
        opt.zero_grad()
    assert not torch.equal(before, model.weight) and torch.isfinite(model.weight).all()
    with plugin.forward_context():
        loss = model(torch.randn(8, 4)).float().pow(2).mean()
    plugin.backward(loss, model)
    with pytest.raises(NotImplementedError, match=r"clipping .* not possible .* fused=True"):
        plugin.unscale_gradients(opt)


def test_clear_errors() -> None:
    with pytest.raises(ValueError, match="bf16-mixed needs no gradient scaler"):
        MixedPrecision("bf16-mixed", device="cpu", scaler=torch.amp.GradScaler("cpu"))
    plugin = MixedPrecision("16-mixed", device="cpu")
    model = torch.nn.Linear(2, 1)
    lbfgs = torch.optim.LBFGS(model.parameters())
    with plugin.forward_context():
        loss = model(torch.ones(1, 2)).sum()
    plugin.backward(loss, model)
    with pytest.raises(TypeError, match="LBFGS cannot be used with a gradient scaler"):
        plugin.optimizer_step(lbfgs, closure=lambda: loss)
    with pytest.raises(ValueError, match=r"'16' is the short form of '16-mixed'"):
        MixedPrecision("16", device="cpu")
    with pytest.raises(ValueError, match=r"'16-mixed' is served by the plugin named 16-mixed"):
        HalfPrecision("16")
    with pytest.raises(
        ValueError,
        match=r"choose one of 32-true, 16-true, bf16-true.*"
        r"'64-true' is served by the plugin named 64-true",
    ):
        FSDPPrecision(64)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="choose one of 16-true, bf16-true"):
        HalfPrecision("fp8")
    with pytest.raises(pr.PluginNotFoundError, match="Did you mean 'fsdp-16-true'"):
        pr.get("fsdp-16-tru")


LIGHTNING = {
    "32-true": lambda m: m.Precision(),
    "64-true": lambda m: m.DoublePrecision(),
    "16-true": lambda m: m.HalfPrecision("16-true"),
    "bf16-true": lambda m: m.HalfPrecision("bf16-true"),
    "16-mixed": lambda m: m.MixedPrecision("16-mixed", device="cpu"),
    "bf16-mixed": lambda m: m.MixedPrecision("bf16-mixed", device="cpu"),
}
TOLERANCE = 1e-6  # the stated tolerance: same seed, data and setting -> same losses


@pytest.mark.parametrize("name", LIGHTNING)
def test_same_loss_trajectory_as_lightning_fabric(name: str) -> None:
    lightning_precision = pytest.importorskip(
        "lightning.fabric.plugins.precision", reason="lightning is in the [test] extra"
    )
    ours = train(pr.load(name, **({"device": "cpu"} if "mixed" in name else {})), steps=60)
    theirs = train(LIGHTNING[name](lightning_precision), steps=60)
    diff = max(abs(a - b) for a, b in zip(ours.losses, theirs.losses, strict=True))
    assert diff <= TOLERANCE, f"{name}: losses differ by up to {diff}"
    assert ours.dtypes == theirs.dtypes


def test_fsdp_mixed_precision_policies() -> None:
    expected = {
        "32-true": torch.float32,
        "16-true": torch.float16,
        "bf16-true": torch.bfloat16,
        "16-mixed": torch.float16,
        "bf16-mixed": torch.bfloat16,
    }
    for value, dtype in expected.items():
        plugin = pr.load(f"fsdp-{value}", device="cpu")
        config = plugin.mixed_precision_config
        assert (config.param_dtype, config.reduce_dtype, config.buffer_dtype) == (dtype,) * 3
        assert (plugin.scaler is not None) == (value == "16-mixed")
    assert pr.load("fsdp").precision == "32-true"


def test_fsdp_accepts_a_user_scaler_where_lightning_refuses() -> None:
    from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

    scaler = ShardedGradScaler(device="cpu", init_scale=1024.0)
    plugin = pr.load("fsdp-16-mixed", scaler=scaler, device="cpu")
    assert plugin.scaler is scaler
    with pytest.raises(pr.PluginLoadError, match="needs no gradient scaler") as info:
        pr.load("fsdp-bf16-mixed", scaler=scaler)
    assert isinstance(info.value.__cause__, ValueError)
    lightning_fsdp = pytest.importorskip("lightning.fabric.plugins.precision.fsdp")
    # Lightning checks self.precision (still the class default, "32-true") before
    # setting it, so it refuses any scaler, even for 16-mixed.
    with pytest.raises(ValueError, match="does not use a scaler"):
        lightning_fsdp.FSDPPrecision("16-mixed", scaler=scaler)


@pytest.mark.slow  # two processes training under FSDP: the inner loop skips it
def test_real_fsdp_on_cpu_with_gloo_two_processes(tmp_path: Path) -> None:
    out = tmp_path / "fsdp.json"
    script = REPO / "tests" / "workers" / "fsdp_worker.py"
    subprocess.run(
        [sys.executable, str(script), str(out)], check=True, timeout=600, capture_output=True
    )
    results: dict[str, Any] = json.loads(out.read_text())
    promises = {
        "32-true": ("float32", "float32"),
        "bf16-true": ("bfloat16", "bfloat16"),
        "16-mixed": ("float32", "float16"),
        "bf16-mixed": ("float32", "bfloat16"),
    }
    assert set(results) == set(promises)
    for value, (params, activations) in promises.items():
        r = results[value]
        assert r["world_size"] == 2 and r["sharded"], value
        assert r["dtypes"]["params"] == [params] and r["dtypes"]["activations"] == [activations]
        assert sum(r["losses"][-10:]) / 10 < 0.15, (value, r["losses"][-10:])


@pytest.mark.parametrize("name", ["16-mixed", "bf16-mixed"])
def test_mixed_precision_on_cuda(name: str) -> None:
    if not torch.cuda.is_available():
        pytest.skip(
            "no CUDA device here: 16-mixed/bf16-mixed on CUDA run on the GPU machine "
            "(benchmarks/gpu/run_precision.sh)"
        )
    plugin = pr.load(name, device="cuda")
    result = train(plugin, steps=300, device="cuda")
    assert sum(result.losses[-10:]) / 10 < 0.15
    assert result.dtypes["params"] == ["float32"]
    assert result.dtypes["activations"] == ["float16" if name == "16-mixed" else "bfloat16"]
