"""DoublePrecision ("64-true"): parameters, activations and gradients in float64."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from builtin_plugins.precision.formats import convert_floating, default_dtype
from plugin_registry.kinds.precision import Precision

if TYPE_CHECKING:
    from torch.nn import Module


class DoublePrecision(Precision):
    """Everything in float64: for numerics that float32 cannot hold."""

    precision = "64-true"

    def convert_module(self, module: Module) -> Module:
        return module.double()

    def tensor_init_context(self) -> contextlib.AbstractContextManager[Any]:
        import torch

        return default_dtype(torch.float64)

    def module_init_context(self) -> contextlib.AbstractContextManager[Any]:
        return self.tensor_init_context()

    def forward_context(self) -> contextlib.AbstractContextManager[Any]:
        return self.tensor_init_context()

    def convert_input(self, data: Any) -> Any:
        import torch

        return convert_floating(data, torch.float64)

    def convert_output(self, data: Any) -> Any:
        import torch

        return convert_floating(data, torch.get_default_dtype())
