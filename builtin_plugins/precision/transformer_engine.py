"""TransformerEnginePrecision: fp8 training through NVIDIA Transformer Engine (CUDA only)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping
from typing import Any

from builtin_plugins.precision.formats import convert_floating, default_dtype
from plugin_registry.kinds.precision import Precision


def fp8_shape_ok(linear: Any) -> bool:
    """Transformer Engine's fp8 GEMMs need in_features % 8 == 0 and out_features % 16 == 0."""
    return bool(linear.in_features % 8 == 0 and linear.out_features % 16 == 0)


class TransformerEnginePrecision(Precision):
    """fp8 matmuls under ``te.fp8_autocast``; weights in ``weights_dtype``.

    ``recipe`` is a ``transformer_engine.common.recipe.DelayedScaling`` or a dict of
    its arguments (``"fp8_format": "HYBRID"`` is looked up in ``Format``).
    ``replace_layers`` (default: yes unless the model already has Transformer
    Engine layers) swaps ``torch.nn.Linear`` and ``torch.nn.LayerNorm`` for
    ``te.Linear`` / ``te.LayerNorm``, copying their weights; a Linear whose shape
    fp8 cannot take is kept, with a warning naming it. Operations outside fp8 run
    under CUDA autocast in ``fallback_compute_dtype`` (default: the weights dtype).
    """

    def __init__(
        self,
        weights_dtype: Any = "bfloat16",
        recipe: Mapping[str, Any] | Any | None = None,
        replace_layers: bool | None = None,
        fallback_compute_dtype: Any | None = None,
    ) -> None:
        import torch
        from transformer_engine.common.recipe import DelayedScaling, Format

        if isinstance(weights_dtype, str):
            weights_dtype = getattr(torch, weights_dtype)
        if recipe is None:
            recipe = DelayedScaling()
        elif isinstance(recipe, Mapping):
            arguments = dict(recipe)
            if isinstance(arguments.get("fp8_format"), str):
                arguments["fp8_format"] = getattr(Format, arguments["fp8_format"])
            recipe = DelayedScaling(**arguments)
        self.weights_dtype = weights_dtype
        self.recipe = recipe
        self.replace_layers = replace_layers
        self.fallback_compute_dtype = fallback_compute_dtype or weights_dtype
        self.precision = (
            "transformer-engine-float16" if weights_dtype == torch.float16 else "transformer-engine"
        )

    def convert_module(self, module: Any) -> Any:
        has_te = any("transformer_engine" in type(m).__module__ for m in module.modules())
        if self.replace_layers or (self.replace_layers is None and not has_te):
            self._replace(module, "")
        return module.to(dtype=self.weights_dtype)

    def _replace(self, module: Any, prefix: str) -> None:
        import torch
        import transformer_engine.pytorch as te

        for name, child in module.named_children():
            full = f"{prefix}{name}"
            if isinstance(child, torch.nn.Linear):
                if not fp8_shape_ok(child):
                    warnings.warn(
                        f"layer {full!r} ({child.in_features}->{child.out_features}) stays a "
                        "torch.nn.Linear: fp8 needs in_features % 8 == 0 and out_features % 16 "
                        "== 0; pad it to use fp8",
                        stacklevel=3,
                    )
                    continue
                new = te.Linear(child.in_features, child.out_features, bias=child.bias is not None)
                new.weight.data = child.weight.data.clone()
                if child.bias is not None:
                    new.bias.data = child.bias.data.clone()
                setattr(module, name, new)
            elif isinstance(child, torch.nn.LayerNorm):
                new = te.LayerNorm(child.normalized_shape[0], eps=child.eps)
                new.weight.data = child.weight.data.clone()
                if child.bias is not None and new.bias is not None:
                    new.bias.data = child.bias.data.clone()
                setattr(module, name, new)
            else:
                self._replace(child, f"{full}.")

    def tensor_init_context(self) -> contextlib.AbstractContextManager[Any]:
        return default_dtype(self.weights_dtype)

    def module_init_context(self) -> contextlib.AbstractContextManager[Any]:
        return self.tensor_init_context()

    def forward_context(self) -> contextlib.AbstractContextManager[Any]:
        import torch
        import transformer_engine.pytorch as te

        stack = contextlib.ExitStack()
        stack.enter_context(default_dtype(self.weights_dtype))
        stack.enter_context(torch.autocast("cuda", dtype=self.fallback_compute_dtype))
        stack.enter_context(te.fp8_autocast(enabled=True, fp8_recipe=self.recipe))
        return stack

    def convert_input(self, data: Any) -> Any:
        return convert_floating(data, self.weights_dtype)

    def convert_output(self, data: Any) -> Any:
        import torch

        return convert_floating(data, torch.get_default_dtype())
