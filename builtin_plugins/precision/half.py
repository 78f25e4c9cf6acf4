"""HalfPrecision ("16-true", "bf16-true"): the whole model in float16 or bfloat16."""

from __future__ import annotations

from builtin_plugins.precision.formats import WholeModelCast, check_precision
from plugin_registry.kinds.precision import Precision


class HalfPrecision(WholeModelCast, Precision):
    """Parameters, activations and gradients in half precision; no fp32 master copy."""

    def __init__(self, precision: str = "16-true") -> None:
        import torch

        self.precision = check_precision(precision, ("16-true", "bf16-true"), "HalfPrecision")
        self._dtype = torch.bfloat16 if self.precision == "bf16-true" else torch.float16
