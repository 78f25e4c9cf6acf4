"""Run registry plugins inside Lightning Fabric and the Lightning Trainer.

Lightning accepts plugin instances of its own base classes; these adapters are
such instances, each delegating to a registry plugin::

    from lightning.fabric import Fabric
    from plugin_registry.lightning import registry_plugins

    fabric = Fabric(accelerator="cpu", plugins=registry_plugins(["bf16-mixed", "slurm"]))

    trainer = Trainer(plugins=registry_plugins(["bf16-mixed", "torch"], trainer=True))

    res = resolve(precision="bf16-mixed")
    fabric = Fabric(plugins=resolution_plugins(res))

Needs the ``[lightning]`` extra. The precision adapters fit the strategies that
take any precision plugin (single device, DDP); FSDP, DeepSpeed and XLA
strategies in Lightning insist on their own precision classes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

try:
    from lightning.fabric.plugins import CheckpointIO as _LightningCheckpointIO
    from lightning.fabric.plugins import ClusterEnvironment as _LightningEnvironment
    from lightning.fabric.plugins import Precision as _FabricPrecision
    from lightning.pytorch.plugins.precision import Precision as _TrainerPrecision
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "plugin_registry.lightning needs Lightning: pip install 'plugin-registry[lightning]'"
    ) from exc

from plugin_registry.kinds.checkpoint_io import CheckpointIO
from plugin_registry.kinds.cluster_environment import ClusterEnvironment
from plugin_registry.kinds.precision import Precision

if TYPE_CHECKING:
    import torch

    from plugin_registry.registry import Registry
    from plugin_registry.resolver.resolution import Resolution

__all__ = [
    "FabricPrecision",
    "RegistryCheckpointIO",
    "RegistryEnvironment",
    "TrainerPrecision",
    "registry_plugins",
    "resolution_plugins",
    "to_lightning",
]


class _PrecisionDelegate:
    """What both precision adapters hand to the registry plugin unchanged.

    Listed first among an adapter's bases, so these win over Lightning's own.
    """

    def __init__(self, plugin: Precision) -> None:
        self.plugin = plugin
        self.precision: Any = getattr(plugin, "precision", "32-true")

    def convert_module(self, module: torch.nn.Module) -> torch.nn.Module:
        return self.plugin.convert_module(module)

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


class FabricPrecision(_PrecisionDelegate, _FabricPrecision):
    """A Fabric ``Precision`` that does what the registry plugin does."""

    def pre_backward(self, tensor: torch.Tensor, module: Any) -> Any:
        return self.plugin.pre_backward(tensor, module)

    def backward(self, tensor: torch.Tensor, model: Any, *args: Any, **kwargs: Any) -> None:
        self.plugin.backward(tensor, model, *args, **kwargs)

    def post_backward(self, tensor: torch.Tensor, module: Any) -> Any:
        return self.plugin.post_backward(tensor, module)

    def optimizer_step(self, optimizer: Any, **kwargs: Any) -> Any:
        return self.plugin.optimizer_step(optimizer, **kwargs)


class TrainerPrecision(_PrecisionDelegate, _TrainerPrecision):
    """A Trainer ``Precision``: the registry plugin plus the Trainer's hooks and closure.

    The Trainer's own hooks (``on_before_backward``, ``on_after_backward``,
    ``on_before_optimizer_step``, gradient clipping) run as with Lightning's
    plugins; the loss scaling, casting and stepping are the registry plugin's.
    """

    def pre_backward(self, tensor: torch.Tensor, module: Any) -> torch.Tensor:
        tensor = self.plugin.pre_backward(tensor, module)
        result: torch.Tensor = super().pre_backward(tensor, module)
        return result

    def backward(
        self, tensor: torch.Tensor, model: Any, optimizer: Any, *args: Any, **kwargs: Any
    ) -> None:
        self.plugin.backward(tensor, model, *args, **kwargs)

    def post_backward(self, tensor: torch.Tensor, module: Any) -> torch.Tensor:
        tensor = self.plugin.post_backward(tensor, module)
        result: torch.Tensor = super().post_backward(tensor, module)
        return result

    def optimizer_step(  # type: ignore[override]  # the Trainer's signature, as Lightning's
        self, optimizer: Any, model: Any, closure: Callable[[], Any], **kwargs: Any
    ) -> Any:
        closure_result = closure()
        # Hooks and clipping after the closure see true gradients, not scaled ones.
        self.plugin.unscale_gradients(optimizer)
        self._after_closure(model, optimizer)
        if closure_result is None and getattr(model, "automatic_optimization", True):
            return None  # the training step skipped backward: nothing to step
        return self.plugin.optimizer_step(optimizer, **kwargs)


class RegistryCheckpointIO(_LightningCheckpointIO):
    """Lightning's ``CheckpointIO`` over a registry checkpoint plugin (atomic saves included)."""

    def __init__(self, plugin: CheckpointIO) -> None:
        self.plugin = plugin

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.plugin!r})"

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        self.plugin.save_checkpoint(checkpoint, path, storage_options)

    def load_checkpoint(
        self, path: Any, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return self.plugin.load_checkpoint(path, map_location, weights_only=weights_only)

    def remove_checkpoint(self, path: Any) -> None:
        self.plugin.remove_checkpoint(path)

    def teardown(self) -> None:
        self.plugin.teardown()


class RegistryEnvironment(_LightningEnvironment):
    """Lightning's ``ClusterEnvironment`` over a registry environment plugin (named for what
    it is: not Lightning's default ``LightningEnvironment`` while SLURM is in use)."""

    def __init__(self, plugin: ClusterEnvironment) -> None:
        self.plugin = plugin

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.plugin!r})"

    @property
    def creates_processes_externally(self) -> bool:
        return bool(self.plugin.creates_processes_externally)

    @property
    def main_address(self) -> str:
        return str(self.plugin.main_address)

    @property
    def main_port(self) -> int:
        return int(self.plugin.main_port)

    @staticmethod
    def detect() -> bool:
        # Lightning asks the class; the registry already chose this environment.
        return True

    def world_size(self) -> int:
        return self.plugin.world_size()

    def set_world_size(self, size: int) -> None:
        self.plugin.set_world_size(size)

    def global_rank(self) -> int:
        return self.plugin.global_rank()

    def set_global_rank(self, rank: int) -> None:
        self.plugin.set_global_rank(rank)

    def local_rank(self) -> int:
        return self.plugin.local_rank()

    def node_rank(self) -> int:
        return self.plugin.node_rank()

    def validate_settings(self, num_devices: int, num_nodes: int) -> None:
        validate = getattr(self.plugin, "validate_settings", None)
        if validate is not None:
            validate(num_devices, num_nodes)

    def teardown(self) -> None:
        self.plugin.teardown()


def to_lightning(plugin: Any, *, trainer: bool = False) -> Any:
    """The Lightning adapter of one registry plugin; Lightning's own plugins pass through."""
    if isinstance(plugin, (_FabricPrecision, _LightningCheckpointIO, _LightningEnvironment)):
        return plugin
    if isinstance(plugin, Precision):
        return TrainerPrecision(plugin) if trainer else FabricPrecision(plugin)
    if isinstance(plugin, CheckpointIO):
        return RegistryCheckpointIO(plugin)
    if isinstance(plugin, ClusterEnvironment):
        return RegistryEnvironment(plugin)
    raise TypeError(
        f"{plugin!r:.80} is not a registry plugin (Precision, CheckpointIO or "
        "ClusterEnvironment from plugin_registry.kinds) nor a Lightning plugin"
    )


def registry_plugins(
    plugins: Iterable[Any], *, trainer: bool = False, registry: Registry | None = None
) -> list[Any]:
    """``plugins=[...]`` for ``Fabric`` (or, with ``trainer=True``, the ``Trainer``).

    Names and records are loaded through the registry; instances are adapted.
    """
    from plugin_registry._default import default_registry

    built = (registry or default_registry()).load_plugins(plugins)
    return [to_lightning(p, trainer=trainer) for p in built]


def resolution_plugins(
    resolution: Resolution, *, trainer: bool = False, registry: Registry | None = None
) -> list[Any]:
    """The resolver's three choices, ready for ``Fabric(plugins=...)`` or the Trainer."""
    return [to_lightning(p, trainer=trainer) for p in resolution.load(registry)]


_RENAMED = {
    "LightningCheckpointIO": "RegistryCheckpointIO",
    "LightningEnvironment": "RegistryEnvironment",
}


def __getattr__(name: str) -> Any:
    # The adapters were named like Lightning's own default environment until 0.2.
    if name in _RENAMED:
        import warnings

        new = _RENAMED[name]
        warnings.warn(
            f"plugin_registry.lightning.{name} is now {new} (the old name goes in the next "
            "release)",
            DeprecationWarning,
            stacklevel=2,
        )
        return globals()[new]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
