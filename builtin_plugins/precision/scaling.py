"""Loss scaling with a GradScaler, shared by the mixed and FSDP plugins."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plugin_registry.kinds.precision import Precision

if TYPE_CHECKING:
    import torch
    from torch.nn import Module
    from torch.optim import Optimizer


def reject_unscalable_optimizer(optimizer: Any) -> None:
    """An optimizer a GradScaler cannot step (LBFGS), with the way out; as Lightning, a
    TypeError."""
    from torch.optim import LBFGS

    if isinstance(optimizer, LBFGS):
        raise TypeError(
            "LBFGS cannot be used with a gradient scaler (16-mixed): its closure re-evaluates "
            "the loss, which the scaler cannot scale. Use bf16-mixed or 32-true with LBFGS."
        )


def reject_unscaling_before_step(optimizer: Any) -> None:
    """Fused/capturable optimizers (AdamW(fused=True)) unscale inside their own step: the
    scaler steps them fine, but their gradients cannot be unscaled first for clipping."""
    if getattr(optimizer, "_step_supports_amp_scaling", False):
        raise NotImplementedError(
            f"gradient clipping with 16-mixed is not possible for {type(optimizer).__name__} "
            "with fused=True: it unscales its gradients inside its own step. Train without "
            "clipping, use fused=False, or use bf16-mixed."
        )


class LossScaling(Precision):
    """A precision plugin whose ``scaler`` (None: no scaling) drives backward and step."""

    scaler: Any = None

    def backward(
        self, tensor: torch.Tensor, model: Module | None, *args: Any, **kwargs: Any
    ) -> None:
        if self.scaler is not None:
            tensor = self.scaler.scale(tensor)
        super().backward(tensor, model, *args, **kwargs)

    def optimizer_step(self, optimizer: Any, **kwargs: Any) -> Any:
        if self.scaler is None:
            return super().optimizer_step(optimizer, **kwargs)
        reject_unscalable_optimizer(optimizer)
        # The scaler skips optimizer.step() when the gradients hold inf or nan; a fused
        # optimizer gets the scale and unscales inside its step.
        output = self.scaler.step(optimizer, **kwargs)
        self.scaler.update()
        return output

    def unscale_gradients(self, optimizer: Optimizer) -> None:
        if self.scaler is not None:
            reject_unscaling_before_step(optimizer)
            self.scaler.unscale_(optimizer)

    def state_dict(self) -> dict[str, Any]:
        return dict(self.scaler.state_dict()) if self.scaler is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.scaler is not None:
            self.scaler.load_state_dict(state_dict)
