"""Lightning's ``Fabric``, taking registry plugin names and ``precision="auto"``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lightning.fabric import Fabric as _LightningFabric

from plugin_registry.lightning.prepare import prepare

if TYPE_CHECKING:
    from plugin_registry.registry import Registry
    from plugin_registry.resolver.resolution import Resolution

__all__ = ["Fabric"]


class Fabric(_LightningFabric):
    """``lightning.Fabric`` whose ``plugins`` may hold registry names, records and
    instances beside Lightning's own plugins, mixed.

    ``precision="auto"``: the resolver picks the precision plugin for this hardware
    and strategy (:attr:`resolution` says why); a ``precision`` that is a registry
    name and none of Lightning's values (``"bitsandbytes-nf4"``) is that plugin;
    Lightning's values (``"bf16-mixed"``) stay Lightning's.
    """

    #: The resolver's decision behind ``precision="auto"`` (None otherwise).
    resolution: Resolution | None

    def __init__(
        self,
        *,
        accelerator: Any = "auto",
        strategy: Any = "auto",
        devices: Any = "auto",
        num_nodes: int = 1,
        precision: Any = None,
        plugins: Any = None,
        callbacks: Any = None,
        loggers: Any = None,
        registry: Registry | None = None,
    ) -> None:
        prepared = prepare(
            plugins=plugins,
            precision=precision,
            accelerator=accelerator,
            strategy=strategy,
            devices=devices,
            num_nodes=num_nodes,
            registry=registry,
        )
        self.resolution = prepared.resolution
        super().__init__(
            accelerator=accelerator,
            strategy=strategy,
            devices=devices,
            num_nodes=num_nodes,
            precision=prepared.precision,
            plugins=prepared.plugins,
            callbacks=callbacks,
            loggers=loggers,
        )

    @property
    def cluster_environment(self) -> Any:
        """The cluster environment in use, on one device too (see
        :func:`plugin_registry.lightning.cluster_environment`)."""
        from plugin_registry.lightning.environment import cluster_environment

        return cluster_environment(self)
