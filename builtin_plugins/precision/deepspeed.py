"""DeepSpeedPrecision ("deepspeed-<precision>"): the precision side of a DeepSpeed engine."""

from __future__ import annotations

import contextlib
from typing import Any

from builtin_plugins.precision.formats import check_precision, convert_floating, default_dtype
from plugin_registry.kinds.precision import FAMILY_PRECISIONS, Precision

DEEPSPEED_PRECISIONS = FAMILY_PRECISIONS["deepspeed"]


class DeepSpeedPrecision(Precision):
    """Inputs in the engine's dtype; backward and step through the DeepSpeed engine.

    DeepSpeed does the casting and loss scaling itself, from its config:
    :meth:`config_fragment` is the ``fp16`` / ``bf16`` section this precision
    implies, for a strategy to merge into the engine's config. ``backward`` calls
    ``engine.backward(loss)`` and ``optimizer_step`` ``engine.step()`` (the
    engine stands in for the optimizer, as in Lightning). On the CPU DeepSpeed
    runs float32 and bfloat16; it refuses float16 there.
    """

    def __init__(self, precision: str = "32-true") -> None:
        import torch

        self.precision = check_precision(precision, DEEPSPEED_PRECISIONS, "DeepSpeedPrecision")
        self._dtype = {"32": torch.float32, "16": torch.float16, "bf16": torch.bfloat16}[
            self.precision.split("-")[0]
        ]

    def config_fragment(self) -> dict[str, Any]:
        """The DeepSpeed config section for this precision (empty for 32-true)."""
        if self.precision.startswith("bf16"):
            return {"bf16": {"enabled": True}}
        if self.precision.startswith("16"):
            # Dynamic loss scaling: DeepSpeed skips a step whose gradients overflow.
            return {"fp16": {"enabled": True, "loss_scale": 0, "initial_scale_power": 16}}
        return {}

    def convert_module(self, module: Any) -> Any:
        if self.precision.endswith("-true"):
            return module.to(dtype=self._dtype)
        return module

    def tensor_init_context(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision.endswith("-true"):
            return default_dtype(self._dtype)
        return contextlib.nullcontext()

    def module_init_context(self) -> contextlib.AbstractContextManager[Any]:
        return self.tensor_init_context()

    def convert_input(self, data: Any) -> Any:
        return convert_floating(data, self._dtype)

    def convert_output(self, data: Any) -> Any:
        import torch

        return convert_floating(data, torch.get_default_dtype())

    def backward(self, tensor: Any, model: Any, *args: Any, **kwargs: Any) -> None:
        """``model`` is the DeepSpeed engine: it scales, reduces and accumulates."""
        model.backward(tensor, *args, **kwargs)

    def optimizer_step(self, optimizer: Any, **kwargs: Any) -> Any:
        """``optimizer`` is the DeepSpeed engine."""
        return optimizer.step(**kwargs)
