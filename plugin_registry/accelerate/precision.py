"""A registry precision plugin where Accelerate would autocast and scale.

Accelerate's own mixed precision lives in three places: ``prepare_model`` wraps
the model's ``forward`` in an autocast context (and casts outputs to float32),
``backward`` scales the loss with its ``GradScaler``, and ``AcceleratedOptimizer``
steps through that scaler. A registry plugin takes those three places: the
forward runs inside ``plugin.forward_context()`` between ``convert_input`` and
``convert_output``, the backward goes through ``plugin.backward``, and the
optimizer steps through ``plugin.optimizer_step`` (a 16-mixed plugin's own
scaler), while Accelerate keeps ``mixed_precision="no"`` and so never casts twice.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from accelerate.optimizer import AcceleratedOptimizer

from plugin_registry.kinds.precision import Precision

__all__ = ["PluginOptimizer", "wrap_forward"]

#: Accelerate's ``mixed_precision`` word for a plugin's ``precision`` (others: "no").
ACCELERATE_WORDS = {"16-mixed": "fp16", "bf16-mixed": "bf16"}


def wrap_forward(model: torch.nn.Module, plugin: Precision) -> None:
    """Run ``model.forward`` through ``plugin`` as Accelerate runs it through autocast.

    The original stays reachable as ``model._original_forward`` and through
    ``__wrapped__``: ``accelerator.unwrap_model(model, keep_fp32_wrapper=False)``
    takes the wrapper off as it takes off its own.
    """
    if "_original_forward" in model.__dict__:
        return  # prepared before: one wrapper only
    original: Callable[..., Any] = model.forward
    object.__setattr__(model, "_original_forward", original)

    @functools.wraps(original)
    def forward(*args: Any, **kwargs: Any) -> Any:
        args, kwargs = plugin.convert_input((args, kwargs))
        with plugin.forward_context():
            output = original(*args, **kwargs)
        return plugin.convert_output(output)

    # An instance attribute, as Accelerate sets it: DDP's forward calls it.
    model.forward = forward


class PluginOptimizer(AcceleratedOptimizer):  # type: ignore[misc]
    """``AcceleratedOptimizer`` whose step is the plugin's ``optimizer_step``.

    Steps only when gradients are synchronised (the last micro-batch of an
    accumulation window), as Accelerate's does; ``step_was_skipped`` is true when
    the plugin (a 16-mixed scaler meeting inf/NaN gradients) did not call the
    optimizer's own step.
    """

    def __init__(self, optimizer: Any, plugin: Precision, device_placement: bool = True) -> None:
        super().__init__(optimizer, device_placement=device_placement, scaler=None)
        self.plugin = plugin

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        if not self.gradient_state.sync_gradients:
            return None
        inner = self.optimizer
        called: list[bool] = []
        real_step = inner.step
        # An LR scheduler may have set its own step on the instance: put back what was.
        own = inner.__dict__.get("step")

        @functools.wraps(real_step)
        def counted(*args: Any, **kwargs: Any) -> Any:
            called.append(True)
            return real_step(*args, **kwargs)

        inner.step = counted
        try:
            kwargs = {} if closure is None else {"closure": closure}
            result = self.plugin.optimizer_step(inner, **kwargs)
        finally:
            if own is not None:
                inner.step = own
            else:
                del inner.step
        self._is_overflow = not called
        return result

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
