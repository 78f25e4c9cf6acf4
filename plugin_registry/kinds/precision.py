"""The precision kind: the numeric format of parameters, activations and gradients.

The interface of Lightning Fabric's ``Precision``. A training loop calls, in order:

1. ``module_init_context()`` while building the model, ``convert_module(model)`` once;
2. per step: ``convert_input(batch)``, the forward pass inside ``forward_context()``,
   ``convert_output(output)``, then ``backward(loss, model)`` (which calls
   ``pre_backward`` / ``post_backward`` around ``loss.backward``), optionally
   ``unscale_gradients(optimizer)`` before clipping, and ``optimizer_step(optimizer)``;
3. ``state_dict()`` into checkpoints, ``load_state_dict()`` on resume, ``teardown()`` at the end.

This module imports torch only inside methods; the class itself is the
``32-true`` plugin, which changes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    import torch
    from torch.nn import Module
    from torch.optim import Optimizer

# Lightning's vocabulary, declared once, as Lightning does at the top of
# lightning/fabric/plugins/precision/precision.py: the resolver's settings, its
# rules and the built-in precision plugins all import it from here.

#: The ``precision=`` values Lightning 2.x accepts, in its spelling.
PrecisionValue = Literal[
    "32-true",
    "64-true",
    "16-true",
    "bf16-true",
    "16-mixed",
    "bf16-mixed",
    "transformer-engine",
    "transformer-engine-float16",
]
#: Lightning's historical short forms.
ShortPrecision = Literal["32", "64", "16", "bf16"]
#: Strategy families that bring their own precision plugin (FSDP, DeepSpeed, XLA).
StrategyFamily = Literal["fsdp", "deepspeed", "xla"]

PRECISIONS: tuple[PrecisionValue, ...] = get_args(PrecisionValue)
SHORT_PRECISIONS: dict[ShortPrecision, PrecisionValue] = {
    "32": "32-true",
    "64": "64-true",
    "16": "16-mixed",
    "bf16": "bf16-mixed",
}
#: What each precision computes in (a device lacking the dtype cannot run it).
PRECISION_DTYPE: dict[PrecisionValue, str] = {
    "64-true": "float64",
    "16-true": "float16",
    "16-mixed": "float16",
    "bf16-true": "bfloat16",
    "bf16-mixed": "bfloat16",
    "transformer-engine": "bfloat16",
    "transformer-engine-float16": "float16",
}
OWN_PRECISION_FAMILIES: frozenset[StrategyFamily] = frozenset(get_args(StrategyFamily))
#: The precisions each family's own plugin supports (Lightning's FSDPPrecision, ...).
FAMILY_PRECISIONS: dict[StrategyFamily, tuple[PrecisionValue, ...]] = {
    "fsdp": ("32-true", "16-true", "bf16-true", "16-mixed", "bf16-mixed"),
    "deepspeed": ("32-true", "16-true", "bf16-true", "16-mixed", "bf16-mixed"),
    "xla": ("32-true", "16-true", "bf16-true"),
}


class Precision:
    """Full (32-bit) precision; the base every precision plugin derives from."""

    def __repr__(self) -> str:
        # The constructor's arguments, so that a log line says which plugin this is.
        from plugin_registry.kinds._repr import plugin_repr

        return plugin_repr(self)

    #: The Lightning-style name of the format, e.g. ``"bf16-mixed"``.
    precision: str = "32-true"

    def convert_module(self, module: Module) -> Module:
        """Called once on the model: may cast its parameters and buffers (in place)."""
        return module

    def prepare_for_load(self, module: Module) -> Module:
        """Make ``module`` able to take a state dict saved from a module this plugin
        converted; called before a checkpoint is loaded into a module that may not be
        converted yet (Lightning's Trainer restores ``ckpt_path`` before it converts).

        The default does nothing: a state dict of cast parameters loads into uncast
        ones. A plugin whose conversion changes the state dict's keys or shapes
        (quantized weights with their scales, packed layouts) converts the module here,
        as :meth:`convert_module` would, so every saved tensor has a place to go; the
        loaded values then replace what conversion computed, bit for bit. It must leave
        a module it already converted as it is: :meth:`convert_module` may follow.
        """
        return module

    def tensor_init_context(self) -> contextlib.AbstractContextManager[Any]:
        """Around creating tensors: may set the default dtype (restored on exit)."""
        return contextlib.nullcontext()

    def module_init_context(self) -> contextlib.AbstractContextManager[Any]:
        """Around building the model: may set the default dtype or the device."""
        return contextlib.nullcontext()

    def forward_context(self) -> contextlib.AbstractContextManager[Any]:
        """Around each forward pass (and loss): may enable autocast."""
        return contextlib.nullcontext()

    def convert_input(self, data: Any) -> Any:
        """Each batch before the forward pass: may cast floating-point tensors."""
        return data

    def convert_output(self, data: Any) -> Any:
        """The forward pass's output: may cast it back to the default dtype."""
        return data

    def pre_backward(self, tensor: torch.Tensor, module: Module | None) -> Any:
        """Just before ``backward`` (a hook; loops ignore what it returns)."""
        return tensor

    def backward(
        self, tensor: torch.Tensor, model: Module | None, *args: Any, **kwargs: Any
    ) -> None:
        """Runs the backward pass of ``tensor`` (a loss scaler scales it first)."""
        tensor.backward(*args, **kwargs)  # type: ignore[no-untyped-call]

    def post_backward(self, tensor: torch.Tensor, module: Module | None) -> Any:
        """Just after ``backward`` (a hook; loops ignore what it returns)."""
        return tensor

    def optimizer_step(self, optimizer: Any, **kwargs: Any) -> Any:
        """Steps the optimizer (a scaler may skip a step with non-finite gradients)."""
        return optimizer.step(**kwargs)

    def main_params(self, optimizer: Optimizer) -> Iterator[torch.nn.Parameter]:
        """The parameters the optimizer updates (a copy in another format, for some plugins)."""
        for group in optimizer.param_groups:
            yield from group["params"]

    def unscale_gradients(self, optimizer: Optimizer) -> None:
        """Before gradient clipping: bring scaled gradients back to their true size."""

    def state_dict(self) -> dict[str, Any]:
        """The plugin's own state for a checkpoint (a scaler's scale, say)."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def teardown(self) -> None:
        """Release what the plugin holds; called when training ends."""
