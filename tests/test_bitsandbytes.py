"""BitsandbytesPrecision on the CPU, for real: six modes, meta init, re-quantization,
a LoRA-style adapter that trains, weight memory, and checkpoints."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

import plugin_registry as pr

bnb = pytest.importorskip(
    "bitsandbytes",
    reason="bitsandbytes is not installed: "
    "pip install 'plugin-registry[bitsandbytes]' (.ci/setup does)",
)

from builtin_plugins.precision.bitsandbytes import (  # noqa: E402
    MODES,
    BitsandbytesPrecision,
)
from plugin_registry.testing.reference_loop import make_model, train  # noqa: E402

LAYER = {"nf4": bnb.nn.Linear4bit, "fp4": bnb.nn.Linear4bit, "int8": bnb.nn.Linear8bitLt}
WEIGHT_DTYPE = {
    "nf4": torch.uint8,
    "nf4-dq": torch.uint8,
    "fp4": torch.uint8,
    "fp4-dq": torch.uint8,
    "int8": torch.int8,
    "int8-training": torch.float32,
}


def linears(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in model.modules() if isinstance(m, (torch.nn.Linear, *LAYER.values()))]


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_quantizes_every_linear_and_runs_forward(mode: str) -> None:
    plugin = pr.load(f"bitsandbytes-{mode}")
    assert isinstance(plugin, BitsandbytesPrecision) and plugin.mode == mode
    torch.manual_seed(0)
    reference = make_model()
    model = plugin.convert_module(copy.deepcopy(reference))
    layers = linears(model)
    assert len(layers) == 3
    assert all(isinstance(m, LAYER[mode.split("-")[0]]) for m in layers)
    assert all(m.weight.dtype == WEIGHT_DTYPE[mode] for m in layers)
    x = torch.randn(8, 16)
    with plugin.forward_context():
        out = plugin.convert_output(model(plugin.convert_input(x)))
    assert out.shape == (8, 1) and torch.isfinite(out).all()
    assert (out - reference(x)).abs().max() < 0.1, "quantized output far from the original"


@pytest.mark.parametrize("mode", ["nf4-dq", "fp4", "int8", "int8-training"])
def test_meta_init_then_full_precision_state_dict_is_quantized_on_load(mode: str) -> None:
    plugin = BitsandbytesPrecision(mode)
    torch.manual_seed(0)
    reference = make_model()
    with plugin.module_init_context():
        model = make_model()
    assert all(p.device.type == "meta" for p in model.parameters()), "built without memory"
    model = plugin.convert_module(model)
    result = model.load_state_dict(reference.state_dict(), assign=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert all(m.weight.dtype == WEIGHT_DTYPE[mode] for m in linears(model))
    eager = plugin.convert_module(copy.deepcopy(reference))
    x = torch.randn(4, 16)
    assert torch.equal(model(x), eager(x))


@pytest.mark.parametrize("mode", MODES)
def test_quantized_checkpoint_saves_and_loads_back_to_identical_outputs(
    mode: str, tmp_path: Path
) -> None:
    plugin = pr.load(f"bitsandbytes-{mode}")
    model = plugin.convert_module(make_model())
    io = pr.load("checkpoint_io/torch")
    io.save_checkpoint({"model": model.state_dict()}, tmp_path / "q.ckpt")
    state = io.load_checkpoint(tmp_path / "q.ckpt")  # weights_only: no pickled objects needed
    with plugin.module_init_context():
        fresh = make_model()
    fresh = plugin.convert_module(fresh)
    fresh.load_state_dict(state["model"], assign=True)
    x = torch.randn(5, 16)
    assert torch.equal(model(x), fresh(x))


class LoRA(torch.nn.Module):
    """A frozen (quantized) layer plus a trainable low-rank update."""

    def __init__(self, base: Any, rank: int = 8) -> None:
        super().__init__()
        self.base = base
        self.a = torch.nn.Parameter(torch.randn(rank, base.in_features) / base.in_features**0.5)
        self.b = torch.nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + x @ self.a.t() @ self.b.t()


@pytest.mark.parametrize("mode", ["nf4", "nf4-dq", "fp4", "int8"])
def test_frozen_quantized_base_with_adapter_trains(mode: str) -> None:
    plugin = pr.load(f"bitsandbytes-{mode}")
    torch.manual_seed(1)
    model = plugin.convert_module(make_model())  # random, frozen base
    for p in model.parameters():
        p.requires_grad_(False)
    for i, child in enumerate(model):
        if isinstance(child, LAYER[mode.split("-")[0]]):
            model[i] = LoRA(child)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    result = train(plugin, model=model, steps=300)
    assert result.losses[0] > 0.3 and sum(result.losses[-10:]) / 10 < 0.15, result.losses[-1]
    for name, p in model.named_parameters():
        if name in frozen:
            assert torch.equal(p, frozen[name]), f"{name} of the quantized base changed"


def quantized_bytes(layer: Any) -> int:
    tensors = [layer.weight]
    state = getattr(layer.weight, "quant_state", None)
    if state is not None:
        tensors += [v for v in state.as_dict(packed=False).values() if isinstance(v, torch.Tensor)]
    return sum(t.numel() * t.element_size() for t in tensors)


def test_nf4_weight_memory_of_a_4096_square_linear() -> None:
    plugin = BitsandbytesPrecision("nf4")
    model = plugin.convert_module(torch.nn.Sequential(torch.nn.Linear(4096, 4096, bias=False)))
    fp32 = 4096 * 4096 * 4
    ratio = quantized_bytes(model[0]) / fp32
    print(
        f"nf4 4096x4096 weight: {quantized_bytes(model[0]) / 2**20:.2f} MiB = {ratio:.3f} of fp32"
    )
    assert ratio <= 0.16


def test_ignore_modules_keeps_those_layers_in_full_precision() -> None:
    model = torch.nn.Sequential()
    model.add_module("body", torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)))
    model.add_module("head", torch.nn.Linear(8, 2))
    BitsandbytesPrecision("nf4", ignore_modules={"head", "body.1"}).convert_module(model)
    assert isinstance(model.body[0], bnb.nn.Linear4bit)
    assert type(model.body[1]) is torch.nn.Linear and type(model.head) is torch.nn.Linear


def test_clear_errors() -> None:
    with pytest.raises(TypeError, match=r"has no torch\.nn\.Linear layer"):
        BitsandbytesPrecision("nf4").convert_module(torch.nn.Sequential(torch.nn.ReLU()))
    with pytest.raises(ValueError, match="choose one of nf4, nf4-dq, fp4, fp4-dq, int8"):
        BitsandbytesPrecision("nf3")
    with pytest.raises(ValueError, match="not a floating-point compute dtype"):
        BitsandbytesPrecision("int8", dtype=torch.int8)
    with pytest.raises(ValueError, match=r"on CUDA computes in torch\.float16 only"):
        BitsandbytesPrecision("int8", dtype=torch.bfloat16, device="cuda")
    with pytest.raises(pr.PluginNotFoundError, match="Did you mean 'bitsandbytes-nf4'"):
        pr.get("bitsandbytes-nf5")


def test_an_unknown_mode_is_also_the_key_error_lightning_raises() -> None:
    from lightning.fabric.plugins.precision import BitsandbytesPrecision as Theirs

    with pytest.raises(KeyError) as theirs:
        Theirs("nf5")  # type: ignore[arg-type]
    with pytest.raises(type(theirs.value)) as ours:
        BitsandbytesPrecision("nf5")
    assert isinstance(ours.value, ValueError)
    assert str(ours.value).startswith("BitsandbytesPrecision does not support mode='nf5'")
    assert "Did you mean 'nf4'" in str(ours.value)


@pytest.mark.parametrize("mode", ["nf4", "int8"])
def test_cuda_forward(mode: str) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here: bitsandbytes on CUDA runs on the GPU machine")
    plugin = BitsandbytesPrecision(mode, device="cuda")
    torch.manual_seed(0)
    reference = make_model().cuda()
    model = plugin.convert_module(copy.deepcopy(reference))
    x = torch.randn(8, 16, device="cuda")
    with plugin.forward_context():
        out = plugin.convert_output(model(plugin.convert_input(x)))
    assert (out - reference(x)).abs().max() < 0.1


def test_the_optional_kernel_notice_is_kept_out_but_other_records_pass(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """On CPUs with AVX512-BF16, importing bitsandbytes logs that the optional Hub kernel
    (`pip install kernels`) is missing; that one notice is dropped, nothing else."""
    import logging

    import builtin_plugins.precision.bitsandbytes  # noqa: F401 - installs the filter

    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    with caplog.at_level(logging.WARNING):
        logger.warning(
            "Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make "
            "sure you already `pip install kernels` and the kernels >= 0.11.1",
            "No module named 'kernels'",
        )
        logger.warning("a real problem")
    assert [r.getMessage() for r in caplog.records] == ["a real problem"]
