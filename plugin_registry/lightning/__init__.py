"""Run registry plugins inside Lightning Fabric and the Lightning Trainer.

Lightning's ``Fabric`` and ``Trainer`` from here take registry plugin names, records
and instances, mixed with Lightning's own plugins, and ``precision="auto"``
(the resolver's choice for this hardware and strategy)::

    from plugin_registry.lightning import Fabric, Trainer

    fabric = Fabric(accelerator="cpu", plugins=["bitsandbytes-nf4", "slurm"])
    trainer = Trainer(precision="auto", plugins=["torch"])
    print(trainer.resolution.explain())

Lightning's own classes take the adapters :func:`registry_plugins` builds (the same
for Fabric and the Trainer; give ``strategy=`` for FSDP, DeepSpeed and XLA, whose
strategies insist on their own precision classes)::

    L.Trainer(strategy="fsdp", plugins=registry_plugins(["fsdp-bf16-mixed"], strategy="fsdp"))

Needs the ``[lightning]`` extra.
"""

from __future__ import annotations

try:
    import lightning  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "plugin_registry.lightning needs Lightning: pip install 'plugin-registry[lightning]'"
    ) from exc

from plugin_registry.lightning.checkpoint_io import RegistryCheckpointIO
from plugin_registry.lightning.convert import registry_plugins, resolution_plugins, to_lightning
from plugin_registry.lightning.environment import RegistryEnvironment, cluster_environment
from plugin_registry.lightning.fabric import Fabric
from plugin_registry.lightning.precision import (
    RegistryDeepSpeedPrecision,
    RegistryFSDPPrecision,
    RegistryPrecision,
    RegistryXLAPrecision,
)
from plugin_registry.lightning.trainer import Trainer

__all__ = [
    "Fabric",
    "RegistryCheckpointIO",
    "RegistryDeepSpeedPrecision",
    "RegistryEnvironment",
    "RegistryFSDPPrecision",
    "RegistryPrecision",
    "RegistryXLAPrecision",
    "Trainer",
    "cluster_environment",
    "registry_plugins",
    "resolution_plugins",
    "to_lightning",
]
