"""HalfPrecision ("16-true", "bf16-true"): the whole model in float16 or bfloat16."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from builtin_plugins.precision.formats import check_precision, convert_floating, default_dtype
from plugin_registry.kinds.precision import Precision

if TYPE_CHECKING:
    from torch.nn import Module


class HalfPrecision(Precision):
    """Parameters, activations and gradients in half precision; no fp32 master copy."""

    def __init__(self, precision: str = "16-true") -> None:
        import torch

        self.precision = check_precision(precision, ("16-true", "bf16-true"), "HalfPrecision")
        self._dtype = torch.bfloat16 if self.precision == "bf16-true" else torch.float16

    def convert_module(self, module: Module) -> Module:
        return module.to(dtype=self._dtype)

    def tensor_init_context(self) -> contextlib.AbstractContextManager[Any]:
        return default_dtype(self._dtype)

    def module_init_context(self) -> contextlib.AbstractContextManager[Any]:
        return self.tensor_init_context()

    def forward_context(self) -> contextlib.AbstractContextManager[Any]:
        return self.tensor_init_context()

    def convert_input(self, data: Any) -> Any:
        return convert_floating(data, self._dtype)

    def convert_output(self, data: Any) -> Any:
        import torch

        return convert_floating(data, torch.get_default_dtype())
