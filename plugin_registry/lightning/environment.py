"""Lightning's ``ClusterEnvironment`` over a registry environment plugin.

Named for what it is: a user debugging sees ``RegistryEnvironment(SLURMEnvironment(...))``,
not Lightning's default ``LightningEnvironment`` while SLURM is in use.
"""

from __future__ import annotations

from typing import Any

from lightning.fabric.plugins import ClusterEnvironment as _LightningEnvironment

from plugin_registry.kinds.cluster_environment import ClusterEnvironment

__all__ = ["RegistryEnvironment", "cluster_environment"]


def cluster_environment(trainer: Any) -> Any:
    """The cluster environment a Lightning ``Trainer`` or ``Fabric`` (ours or Lightning's)
    uses, on one device as under DDP: a :class:`RegistryEnvironment` (``.plugin`` is the
    registry plugin) or one of Lightning's own.

    ``trainer.strategy.cluster_environment`` exists only for the strategies that form a
    process group (a single-device strategy has none); Lightning keeps the one it chose
    in its private connector, read here so user code need not.
    """
    chosen = getattr(getattr(trainer, "strategy", None), "cluster_environment", None)
    if chosen is not None:
        return chosen
    for attribute in ("_accelerator_connector", "_connector"):  # Trainer, Fabric
        connector = getattr(trainer, attribute, None)
        if connector is not None and getattr(connector, "cluster_environment", None) is not None:
            return connector.cluster_environment
    raise TypeError(
        f"cluster_environment() takes a Lightning Trainer or Fabric, got {type(trainer).__name__}"
    )


class RegistryEnvironment(_LightningEnvironment):
    """Lightning's ``ClusterEnvironment`` over a registry environment plugin."""

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
