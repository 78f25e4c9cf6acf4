"""TransformerEnginePrecision: fp8 training through NVIDIA Transformer Engine (CUDA only)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

from builtin_plugins.precision.formats import convert_floating, default_dtype
from plugin_registry.kinds.precision import Precision


def fp8_shape_ok(linear: Any) -> bool:
    """Transformer Engine's fp8 GEMMs need in_features % 8 == 0 and out_features % 16 == 0."""
    return _fp8_features_ok(linear.in_features, linear.out_features)


def _fp8_features_ok(in_features: int, out_features: int) -> bool:
    return in_features % 8 == 0 and out_features % 16 == 0


def _shape_warning(name: str, in_features: int, out_features: int) -> str:
    return (
        f"layer {name!r} ({in_features}->{out_features}) stays a torch.nn.Linear: fp8 needs "
        "in_features % 8 == 0 and out_features % 16 == 0; pad it to use fp8"
    )


@contextlib.contextmanager
def replacing_classes(module: Any, replacements: Mapping[str, Any]) -> Iterator[None]:
    """Inside, ``module.<name>`` is ``replacements[name]`` (so ``torch.nn.Linear(...)``
    written in a model's ``__init__`` builds the replacement); restored on exit."""
    saved = {name: getattr(module, name) for name in replacements}
    for name, new in replacements.items():
        setattr(module, name, new)
    try:
        yield
    finally:
        for name, old in saved.items():
            setattr(module, name, old)


def te_layer_classes() -> dict[str, Any]:
    """``Linear`` and ``LayerNorm`` that build Transformer Engine layers from torch's
    arguments; a Linear whose shape fp8 cannot take stays torch's, with a warning."""
    import torch
    import transformer_engine.pytorch as te

    torch_linear = torch.nn.Linear

    class Linear(te.Linear):  # type: ignore[misc]
        def __new__(cls, in_features: int, out_features: int, *args: Any, **kwargs: Any) -> Any:
            if not _fp8_features_ok(in_features, out_features):
                warnings.warn(_shape_warning("Linear", in_features, out_features), stacklevel=2)
                return torch_linear(in_features, out_features, *args, **kwargs)
            return super().__new__(cls)

        def __init__(
            self,
            in_features: int,
            out_features: int,
            bias: bool = True,
            device: Any = None,
            dtype: Any = None,
        ) -> None:
            super().__init__(
                in_features,
                out_features,
                bias=bias,
                params_dtype=dtype or torch.get_default_dtype(),
                device=device or "cuda",
            )

    class LayerNorm(te.LayerNorm):  # type: ignore[misc]
        def __init__(
            self,
            normalized_shape: Any,
            eps: float = 1e-5,
            elementwise_affine: bool = True,
            bias: bool = True,
            device: Any = None,
            dtype: Any = None,
        ) -> None:
            size = normalized_shape if isinstance(normalized_shape, int) else normalized_shape[-1]
            super().__init__(
                size,
                eps=eps,
                params_dtype=dtype or torch.get_default_dtype(),
                device=device or "cuda",
            )

    return {"Linear": Linear, "LayerNorm": LayerNorm}


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
                        _shape_warning(full, child.in_features, child.out_features), stacklevel=3
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
        """The weights dtype; with ``replace_layers=True`` also ``torch.nn.Linear`` and
        ``torch.nn.LayerNorm`` built inside are Transformer Engine layers (as Lightning's)."""
        stack = contextlib.ExitStack()
        if self.replace_layers:
            import torch

            stack.enter_context(replacing_classes(torch.nn, te_layer_classes()))
        stack.enter_context(self.tensor_init_context())
        return stack

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
