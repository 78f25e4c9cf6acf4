"""MixedPrecision ("16-mixed", "bf16-mixed"): float32 weights, autocast activations."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from builtin_plugins.precision.formats import check_precision, convert_floating
from builtin_plugins.precision.scaling import LossScaling

if TYPE_CHECKING:
    pass


def default_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


class MixedPrecision(LossScaling):
    """``torch.autocast`` around the forward pass; a ``GradScaler`` for 16-mixed.

    ``device`` is the autocast device ("cpu", "cuda", "mps"; default: the first
    one available). 16-mixed scales the loss so small float16 gradients do not
    underflow, skips a step whose gradients are not finite, and keeps the scale
    in :meth:`state_dict`. bf16-mixed needs no scaler, and refuses one.
    """

    def __init__(
        self, precision: str = "16-mixed", device: str | None = None, scaler: Any | None = None
    ) -> None:
        import torch

        self.precision = check_precision(precision, ("16-mixed", "bf16-mixed"), "MixedPrecision")
        self.device = device or default_device()
        if scaler is not None and self.precision == "bf16-mixed":
            raise ValueError(
                f"bf16-mixed needs no gradient scaler, but one was given ({scaler!r}); "
                "drop it, or use precision='16-mixed'"
            )
        if scaler is None and self.precision == "16-mixed":
            scaler = torch.amp.GradScaler(device=self.device)
        self.scaler = scaler
        self._dtype = torch.bfloat16 if self.precision == "bf16-mixed" else torch.float16

    def forward_context(self) -> contextlib.AbstractContextManager[Any]:
        import torch

        return torch.autocast(self.device, dtype=self._dtype)

    def convert_input(self, data: Any) -> Any:
        return convert_floating(data, self._dtype)

    def convert_output(self, data: Any) -> Any:
        import torch

        return convert_floating(data, torch.get_default_dtype())
