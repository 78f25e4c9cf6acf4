"""Lightning's ``Trainer``, taking registry plugin names and ``precision="auto"``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lightning.pytorch import Trainer as _LightningTrainer

from plugin_registry.lightning.prepare import prepare

if TYPE_CHECKING:
    from plugin_registry.registry import Registry
    from plugin_registry.resolver.resolution import Resolution

__all__ = ["Trainer"]


class Trainer(_LightningTrainer):
    """``lightning.Trainer`` whose ``plugins`` may hold registry names, records and
    instances beside Lightning's own plugins, mixed (also from a LightningCLI config:
    ``trainer: {plugins: [bitsandbytes-nf4, slurm], precision: auto}``).

    ``precision="auto"``: the resolver picks the precision plugin for this hardware
    and strategy (:attr:`resolution` says why); a ``precision`` that is a registry
    name and none of Lightning's values is that plugin; Lightning's values stay
    Lightning's. Every other argument is Lightning's.
    """

    #: The resolver's decision behind ``precision="auto"`` (None otherwise).
    resolution: Resolution | None

    def __init__(
        self,
        *,
        precision: str | int | None = None,
        plugins: list[Any] | Any | None = None,
        registry: Registry | None = None,
        **kwargs: Any,
    ) -> None:
        prepared = prepare(
            plugins=plugins,
            precision=precision,
            accelerator=kwargs.get("accelerator", "auto"),
            strategy=kwargs.get("strategy", "auto"),
            devices=kwargs.get("devices", "auto"),
            num_nodes=kwargs.get("num_nodes", 1),
            registry=registry,
        )
        self.resolution = prepared.resolution
        super().__init__(precision=prepared.precision, plugins=prepared.plugins, **kwargs)
        _prepare_before_restoring(self.strategy)

    @property
    def cluster_environment(self) -> Any:
        """The cluster environment in use, on one device too (see
        :func:`plugin_registry.lightning.cluster_environment`)."""
        from plugin_registry.lightning.environment import cluster_environment

        return cluster_environment(self)


def _prepare_before_restoring(strategy: Any) -> None:
    """Lightning restores ``ckpt_path`` into the model before the strategy converts it
    (except under FSDP and DeepSpeed): a checkpoint saved from a quantized model then
    meets unquantized layers. The precision plugin prepares the model first
    (:meth:`~plugin_registry.kinds.precision.Precision.prepare_for_load`)."""
    load = strategy.load_model_state_dict

    def load_model_state_dict(checkpoint: Any, strict: bool = True) -> Any:
        prepare = getattr(strategy.precision_plugin, "prepare_for_load", None)
        module = strategy.lightning_module
        if prepare is not None and module is not None:
            prepare(module)
        return load(checkpoint, strict=strict)

    strategy.load_model_state_dict = load_model_state_dict
