"""DoublePrecision ("64-true"): parameters, activations and gradients in float64."""

from __future__ import annotations

from builtin_plugins.precision.formats import WholeModelCast
from plugin_registry.kinds.precision import Precision


class DoublePrecision(WholeModelCast, Precision):
    """Everything in float64: for numerics that float32 cannot hold."""

    precision = "64-true"

    def __init__(self) -> None:
        import torch

        self._dtype = torch.float64
