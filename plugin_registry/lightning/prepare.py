"""What ``Fabric`` and the ``Trainer`` of :mod:`plugin_registry.lightning` hand Lightning.

Plugin names, records and instances become Lightning plugins; ``precision="auto"``
is the resolver's choice for this hardware and strategy; a ``precision=`` that is
a registry name and not one of Lightning's values is that plugin.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from lightning.fabric.plugins import Precision as _FabricPrecision

from plugin_registry.kinds.precision import PRECISIONS, SHORT_PRECISIONS
from plugin_registry.lightning.convert import (
    is_lightnings,
    registry_plugins,
    strategy_family,
)
from plugin_registry.records import as_list

if TYPE_CHECKING:
    from plugin_registry.registry import Registry
    from plugin_registry.resolver.resolution import Resolution

__all__ = ["Prepared", "prepare"]

_LIGHTNING_PRECISIONS = {*PRECISIONS, *SHORT_PRECISIONS, 16, 32, 64}


@dataclasses.dataclass(frozen=True)
class Prepared:
    """Lightning's ``precision=`` and ``plugins=``, and the resolution behind "auto"."""

    precision: Any
    plugins: list[Any] | None
    resolution: Resolution | None


def _strategy_name(strategy: Any) -> str:
    """The resolver's name for Lightning's ``strategy`` setting (a name or a Strategy)."""
    if isinstance(strategy, str):
        return strategy
    family = strategy_family(strategy)
    if family is not None:
        return family
    kind = type(strategy).__name__
    if "DDP" in kind:
        return "ddp"
    return "single_device" if "SingleDevice" in kind else "auto"


def _setting(value: Any) -> Any:
    # Lightning's Accelerator objects have no name the resolver knows: it detects.
    return value if isinstance(value, (str, int, list, tuple)) else "auto"


def prepare(
    *,
    plugins: Any,
    precision: Any,
    accelerator: Any = "auto",
    strategy: Any = "auto",
    devices: Any = "auto",
    num_nodes: int = 1,
    registry: Registry | None = None,
) -> Prepared:
    """Lightning's ``precision=`` and ``plugins=`` for these settings."""
    items = as_list(plugins)
    if (
        isinstance(precision, str)
        and precision not in _LIGHTNING_PRECISIONS
        and precision != "auto"
    ):
        items.append(precision)  # a registry name; a misspelling gets "did you mean"
        precision = None
    ours = [p for p in items if not is_lightnings(p)]
    adapted = registry_plugins(items, strategy=strategy, registry=registry)
    resolution = None
    if precision == "auto":
        precision = None
        if not any(isinstance(p, _FabricPrecision) for p in items):
            # No Lightning precision plugin given: the resolver decides (a registry
            # precision named in plugins=[...] is its explicit pick).
            resolution = _resolve(ours, accelerator, strategy, devices, num_nodes, registry)
            if not any(isinstance(p, _FabricPrecision) for p in adapted):
                chosen = resolution.precision.load(registry)
                adapted += registry_plugins([chosen], strategy=strategy, registry=registry)
    return Prepared(precision, adapted or None, resolution)


def _resolve(
    ours: list[Any],
    accelerator: Any,
    strategy: Any,
    devices: Any,
    num_nodes: int,
    registry: Registry | None,
) -> Resolution:
    from plugin_registry.resolver import resolve

    return resolve(
        accelerator=_setting(accelerator),
        strategy=_strategy_name(strategy),
        devices=_setting(devices),
        num_nodes=num_nodes,
        plugins=ours,
        registry=registry,
    )
