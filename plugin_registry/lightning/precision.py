"""Precision adapters: Lightning ``Precision`` instances that do what a registry plugin does.

One adapter serves both Fabric and the Trainer (Lightning's Trainer ``Precision``
is a subclass of Fabric's), telling the two apart by what Lightning hands it: the
Trainer's strategy passes the ``LightningModule`` it trains (attached to a
Trainer) and ``model=``/``closure=`` to ``optimizer_step``; Fabric passes the
module alone and never a ``model=``.

Lightning's FSDP, DeepSpeed and XLA strategies accept only their own precision
classes, so each family has an adapter that subclasses both of Lightning's (the
Trainer's and Fabric's) and still delegates everything to the registry plugin.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from lightning.fabric.plugins.precision.deepspeed import (
    DeepSpeedPrecision as _FabricDeepSpeedPrecision,
)
from lightning.fabric.plugins.precision.fsdp import FSDPPrecision as _FabricFSDPPrecision
from lightning.fabric.plugins.precision.xla import XLAPrecision as _FabricXLAPrecision
from lightning.pytorch.plugins.precision import Precision as _TrainerPrecision
from lightning.pytorch.plugins.precision.deepspeed import (
    DeepSpeedPrecision as _TrainerDeepSpeedPrecision,
)
from lightning.pytorch.plugins.precision.fsdp import FSDPPrecision as _TrainerFSDPPrecision
from lightning.pytorch.plugins.precision.xla import XLAPrecision as _TrainerXLAPrecision

from plugin_registry.kinds.precision import Precision

if TYPE_CHECKING:
    import torch

__all__ = [
    "RegistryDeepSpeedPrecision",
    "RegistryFSDPPrecision",
    "RegistryPrecision",
    "RegistryXLAPrecision",
    "precision_adapter",
]


def _trainer_of(module: Any) -> Any:
    """The Trainer driving ``module``, or None under Fabric (or outside any loop)."""
    return getattr(module, "_trainer", None)


class _Delegate:
    """The registry plugin's behaviour, placed first among an adapter's bases so it
    wins over the Lightning classes the adapter subclasses for their type."""

    def __init__(self, plugin: Precision) -> None:
        self.plugin = plugin
        self.precision: Any = getattr(plugin, "precision", "32-true")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.plugin!r})"

    def convert_module(self, module: torch.nn.Module) -> torch.nn.Module:
        return self.plugin.convert_module(module)

    def prepare_for_load(self, module: torch.nn.Module) -> torch.nn.Module:
        return self.plugin.prepare_for_load(module)

    def tensor_init_context(self) -> contextlib.AbstractContextManager[Any]:
        return self.plugin.tensor_init_context()

    def module_init_context(self) -> contextlib.AbstractContextManager[Any]:
        return self.plugin.module_init_context()

    def forward_context(self) -> contextlib.AbstractContextManager[Any]:
        return self.plugin.forward_context()

    def convert_input(self, data: Any) -> Any:
        return self.plugin.convert_input(data)

    def convert_output(self, data: Any) -> Any:
        return self.plugin.convert_output(data)

    def main_params(self, optimizer: Any) -> Iterator[torch.nn.Parameter]:
        return self.plugin.main_params(optimizer)

    def unscale_gradients(self, optimizer: Any) -> None:
        self.plugin.unscale_gradients(optimizer)

    def state_dict(self) -> dict[str, Any]:
        return self.plugin.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.plugin.load_state_dict(state_dict)

    def teardown(self) -> None:
        self.plugin.teardown()

    # -- the loop: Fabric's calls, or the Trainer's with its hooks around ours ---------

    def pre_backward(self, tensor: torch.Tensor, module: Any) -> Any:
        result = self.plugin.pre_backward(tensor, module)
        if _trainer_of(module) is None:
            return result
        # The Trainer's on_before_backward hooks, as its own plugins run them.
        return _TrainerPrecision.pre_backward(self, result, module)  # type: ignore[arg-type]

    def backward(self, tensor: torch.Tensor, model: Any, *args: Any, **kwargs: Any) -> None:
        if _trainer_of(model) is not None and args:
            args = args[1:]  # the Trainer passes the optimizer third; our plugins take none
            model = self._backward_target(model)
        self.plugin.backward(tensor, model, *args, **kwargs)

    def post_backward(self, tensor: torch.Tensor, module: Any) -> Any:
        result = self.plugin.post_backward(tensor, module)
        if _trainer_of(module) is None:
            return result
        return _TrainerPrecision.post_backward(self, result, module)  # type: ignore[arg-type]

    def optimizer_step(
        self,
        optimizer: Any,
        model: Any = None,
        closure: Callable[[], Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        if model is None:  # Fabric: a closure, if any, is the user's, for optimizer.step
            if closure is not None:
                kwargs["closure"] = closure
            return self.plugin.optimizer_step(optimizer, **kwargs)
        closure_result = closure() if closure is not None else None
        if not getattr(optimizer, "_step_supports_amp_scaling", False):
            # Hooks and clipping after the closure see true gradients, not scaled ones;
            # fused optimizers unscale inside their own step (Lightning skips them too).
            self.plugin.unscale_gradients(optimizer)
        self._after_closure(model, optimizer)  # type: ignore[attr-defined]
        if closure_result is None and getattr(model, "automatic_optimization", True):
            self._skipped_backward()
            return None  # the training step skipped backward: nothing to step
        return self.plugin.optimizer_step(self._step_target(optimizer, model), **kwargs)

    def clip_gradients(
        self,
        optimizer: Any,
        clip_val: int | float = 0.0,
        gradient_clip_algorithm: Any = None,
    ) -> None:
        if clip_val and getattr(optimizer, "_step_supports_amp_scaling", False):
            # Gradients still scaled: the registry plugin refuses with the way out
            # (a plugin without loss scaling has nothing to unscale and clips as usual).
            self.plugin.unscale_gradients(optimizer)
        super().clip_gradients(  # type: ignore[misc]
            optimizer, clip_val=clip_val, gradient_clip_algorithm=gradient_clip_algorithm
        )

    # -- what differs under DeepSpeed --------------------------------------------------

    def _skipped_backward(self) -> None:
        """A training step returned None: most strategies just skip the step."""

    def _backward_target(self, model: Any) -> Any:
        return model

    def _step_target(self, optimizer: Any, model: Any) -> Any:
        return optimizer


class RegistryPrecision(_Delegate, _TrainerPrecision):
    """A registry precision plugin for Fabric and the Trainer (single device, DDP).

    The Trainer's hooks (``on_before_backward``, ``on_after_backward``,
    ``on_before_optimizer_step``, gradient clipping) run as with Lightning's own
    plugins; casting, loss scaling and stepping are the registry plugin's.
    """


class RegistryFSDPPrecision(_Delegate, _TrainerFSDPPrecision, _FabricFSDPPrecision):
    """For Lightning's FSDP strategies: the registry plugin's ``mixed_precision_config``."""

    @property
    def mixed_precision_config(self) -> Any:
        return self.plugin.mixed_precision_config  # type: ignore[attr-defined]

    def __init__(self, plugin: Precision) -> None:
        super().__init__(plugin)
        # Lightning's FSDP code reads the scaler here; it is the registry plugin's own.
        self.scaler = getattr(plugin, "scaler", None)


class RegistryDeepSpeedPrecision(_Delegate, _TrainerDeepSpeedPrecision, _FabricDeepSpeedPrecision):
    """For Lightning's DeepSpeed strategies: backward and step go through the engine.

    Under the Trainer the engine is the Trainer's model (Lightning's DeepSpeed
    strategy hands the precision plugin the ``LightningModule``); under Fabric the
    strategy already hands it the engine.
    """

    def _skipped_backward(self) -> None:
        from lightning.fabric.utilities.exceptions import MisconfigurationException

        # The engine counts micro-batches itself: a skipped one would desynchronise it.
        raise MisconfigurationException(
            "Skipping backward by returning `None` from your `training_step` is not "
            "supported by `DeepSpeed`: return the loss"
        )

    def _backward_target(self, model: Any) -> Any:
        return model.trainer.model

    def _step_target(self, optimizer: Any, model: Any) -> Any:
        return model.trainer.model


class RegistryXLAPrecision(_Delegate, _TrainerXLAPrecision, _FabricXLAPrecision):
    """For Lightning's XLA strategies (its XLA-FSDP reads the dtype it computes in)."""

    def __init__(self, plugin: Precision) -> None:
        import torch

        super().__init__(plugin)
        self._desired_dtype = {"16-true": torch.float16, "bf16-true": torch.bfloat16}.get(
            str(self.precision), torch.float32
        )


#: The adapter for each strategy family that insists on its own precision class.
FAMILY_ADAPTERS: dict[str | None, type[_Delegate]] = {
    None: RegistryPrecision,
    "fsdp": RegistryFSDPPrecision,
    "deepspeed": RegistryDeepSpeedPrecision,
    "xla": RegistryXLAPrecision,
}


def precision_adapter(plugin: Precision, family: str | None = None) -> _Delegate:
    """The Lightning precision adapter of ``plugin`` for a strategy ``family``
    (``"fsdp"``, ``"deepspeed"``, ``"xla"``, or None for every other strategy)."""
    return FAMILY_ADAPTERS[family](plugin)
