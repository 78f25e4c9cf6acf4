"""TransformerEnginePrecision: listed and explained everywhere; trained in fp8 where CUDA is.

Transformer Engine cannot even be imported without CUDA (its wheel needs cudart and
cuDNN), so on the CPU machines the plugin is listed as unavailable with the way to
install it, and the fp8 training test skips with the reason printed.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

import plugin_registry as pr
from builtin_plugins.precision.transformer_engine import fp8_shape_ok, replacing_classes

NAMES = ("transformer-engine", "transformer-engine-float16")


@pytest.mark.parametrize("name", NAMES)
def test_listed_with_availability_and_the_way_to_install(name: str) -> None:
    record = pr.get(f"precision/{name}")
    assert record.accelerators == ("cuda",)
    assert record.requires == ("transformer_engine>=1.11",)
    if importlib.util.find_spec("transformer_engine") is None:
        assert not record.available
        assert "transformer_engine is not installed" in record.unavailable_reason
        assert "plugin-registry[transformer-engine]" in record.unavailable_reason
        with pytest.raises(pr.PluginUnavailableError, match="transformer_engine is not installed"):
            pr.load(name)


def test_fp8_shape_rule() -> None:
    assert fp8_shape_ok(torch.nn.Linear(16, 32))
    assert not fp8_shape_ok(torch.nn.Linear(12, 32)) and not fp8_shape_ok(torch.nn.Linear(16, 8))


def _fp8_capable() -> str:
    if importlib.util.find_spec("transformer_engine") is None:
        return "Transformer Engine is not installed (it needs CUDA): run on the GPU machine"
    if not torch.cuda.is_available():
        return "no CUDA device here"
    if torch.cuda.get_device_capability() < (8, 9):
        return f"fp8 needs compute capability 8.9+, found {torch.cuda.get_device_capability()}"
    return ""


@pytest.mark.parametrize("name", NAMES)
def test_fp8_training_on_cuda(name: str) -> None:
    why = _fp8_capable()
    if why:
        pytest.skip(why)
    from plugin_registry.testing.reference_loop import make_model, train

    plugin = pr.load(name)
    model = make_model(features=16, hidden=64)
    with pytest.warns(UserWarning, match="stays a torch.nn.Linear"):  # the 64->1 head
        model = plugin.convert_module(model.cuda())
    assert sum("transformer_engine" in type(m).__module__ for m in model.modules()) == 2
    result = train(plugin, model=model, steps=300, device="cuda")
    assert sum(result.losses[-10:]) / 10 < 0.15


def test_replacing_classes_swaps_them_inside_and_restores_them() -> None:
    class Marked(torch.nn.Linear):
        pass

    original = torch.nn.Linear
    with replacing_classes(torch.nn, {"Linear": Marked}):
        built = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU())
    assert type(built[0]) is Marked
    assert torch.nn.Linear is original
    with pytest.raises(RuntimeError), replacing_classes(torch.nn, {"Linear": Marked}):
        raise RuntimeError("model code failed")
    assert torch.nn.Linear is original  # restored on errors too


@pytest.mark.parametrize("name", NAMES)
def test_module_init_context_builds_te_layers_when_replacing(name: str) -> None:
    why = _fp8_capable()
    if why:
        pytest.skip(why)
    plugin = pr.load(name, replace_layers=True)
    warns = pytest.warns(UserWarning, match="stays a torch.nn.Linear")
    with warns, plugin.module_init_context():
        model = torch.nn.Sequential(
            torch.nn.Linear(16, 64), torch.nn.LayerNorm(64), torch.nn.Linear(64, 1)
        )
    import transformer_engine.pytorch as te

    assert isinstance(model[0], te.Linear) and isinstance(model[1], te.LayerNorm)
    assert type(model[2]) is torch.nn.Linear  # the 64->1 head cannot take fp8
    assert model[0].weight.dtype == plugin.weights_dtype
