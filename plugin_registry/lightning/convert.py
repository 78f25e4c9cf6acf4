"""Registry plugins (names, records, instances) turned into Lightning plugin instances."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from lightning.fabric.plugins import CheckpointIO as _LightningCheckpointIO
from lightning.fabric.plugins import ClusterEnvironment as _LightningEnvironment
from lightning.fabric.plugins import Precision as _FabricPrecision
from lightning.fabric.strategies.deepspeed import DeepSpeedStrategy as _FabricDeepSpeed
from lightning.fabric.strategies.fsdp import FSDPStrategy as _FabricFSDP
from lightning.fabric.strategies.single_xla import SingleDeviceXLAStrategy as _FabricOneXLA
from lightning.fabric.strategies.xla import XLAStrategy as _FabricXLA
from lightning.fabric.strategies.xla_fsdp import XLAFSDPStrategy as _FabricXLAFSDP
from lightning.pytorch.strategies.deepspeed import DeepSpeedStrategy as _TrainerDeepSpeed
from lightning.pytorch.strategies.fsdp import FSDPStrategy as _TrainerFSDP
from lightning.pytorch.strategies.single_xla import SingleDeviceXLAStrategy as _TrainerOneXLA
from lightning.pytorch.strategies.xla import XLAStrategy as _TrainerXLA

from plugin_registry.kinds.checkpoint_io import CheckpointIO
from plugin_registry.kinds.cluster_environment import ClusterEnvironment
from plugin_registry.kinds.precision import OWN_PRECISION_FAMILIES, Precision
from plugin_registry.lightning.checkpoint_io import RegistryCheckpointIO
from plugin_registry.lightning.environment import RegistryEnvironment
from plugin_registry.lightning.precision import precision_adapter
from plugin_registry.records import PluginInfo, as_list

if TYPE_CHECKING:
    from plugin_registry.registry import Registry
    from plugin_registry.resolver.resolution import Resolution

__all__ = ["registry_plugins", "resolution_plugins", "strategy_family", "to_lightning"]

#: Lightning's strategy classes whose precision must be their own, by family.
_STRATEGY_CLASSES: dict[str, tuple[type, ...]] = {
    "fsdp": (_FabricFSDP, _TrainerFSDP),
    "deepspeed": (_FabricDeepSpeed, _TrainerDeepSpeed),
    "xla": (_FabricXLA, _FabricXLAFSDP, _FabricOneXLA, _TrainerXLA, _TrainerOneXLA),
}


def strategy_family(strategy: Any) -> str | None:
    """``"fsdp"``, ``"deepspeed"`` or ``"xla"`` when Lightning's ``strategy`` setting (a
    name or a Strategy) insists on its own precision class; None for every other."""
    if strategy is None:
        return None
    if isinstance(strategy, str):
        from plugin_registry.resolver.settings import STRATEGIES

        spec = STRATEGIES.get(strategy)
        family = spec.family if spec is not None else None
        return family if family in OWN_PRECISION_FAMILIES else None
    for family, classes in _STRATEGY_CLASSES.items():
        if isinstance(strategy, classes):
            return family
    return None


def is_lightnings(plugin: Any) -> bool:
    """Whether ``plugin`` is one of Lightning's own, or a subclass of its plugin classes
    (passed to Lightning unchanged)."""
    if isinstance(plugin, (_FabricPrecision, _LightningCheckpointIO, _LightningEnvironment)):
        return True
    return type(plugin).__module__.split(".")[0] in ("lightning", "pytorch_lightning")


def _record_family(record: PluginInfo | None) -> str | None:
    if record is None:
        return None
    families = [s for s in record.strategies if s in OWN_PRECISION_FAMILIES]
    return families[0] if families else None


def _record_of(plugin: Any, registry: Registry) -> PluginInfo | None:
    """The record whose target built ``plugin`` (None for an unregistered class)."""
    cls = type(plugin)
    target = f"{cls.__module__}:{cls.__qualname__}"
    for record in registry.list_plugins(kind="precision"):
        if record.target == target:
            return record
    return None


def _adapt_precision(
    plugin: Precision, record: PluginInfo | None, family: str | None, registry: Registry
) -> Any:
    record = record if record is not None else _record_of(plugin, registry)
    own = _record_family(record)
    if family is None or record is None:
        # No strategy to fit, or a class no record describes: the user's word decides.
        return precision_adapter(plugin, family or own)
    if own != family:
        name = record.name.format_map({k: getattr(plugin, k, k) for k in record.name_parameters})
        value = getattr(plugin, "precision", "32-true")
        made_for = f"made for the {own} strategy" if own else "not made for it"
        raise ValueError(
            f"Lightning's {family} strategy needs a precision plugin made for it, and "
            f"{name!r} is {made_for}: use '{family}-{value}' (plugin-registry list "
            f"--kind precision shows the {family}-* plugins)"
        )
    return precision_adapter(plugin, family)


def to_lightning(
    plugin: Any,
    *,
    strategy: Any = None,
    record: PluginInfo | None = None,
    registry: Registry | None = None,
) -> Any:
    """The Lightning adapter of one registry plugin; Lightning's own plugins pass through.

    ``strategy`` (Lightning's setting: a name or a Strategy) picks the precision
    adapter Lightning's FSDP, DeepSpeed and XLA strategies insist on; left out, the
    plugin's own record decides.
    """
    if is_lightnings(plugin):
        return plugin
    if isinstance(plugin, Precision):
        from plugin_registry._default import default_registry

        reg = registry or default_registry()
        return _adapt_precision(plugin, record, strategy_family(strategy), reg)
    if isinstance(plugin, CheckpointIO):
        return RegistryCheckpointIO(plugin)
    if isinstance(plugin, ClusterEnvironment):
        return RegistryEnvironment(plugin)
    raise TypeError(
        f"{plugin!r:.80} is not a registry plugin (Precision, CheckpointIO or "
        "ClusterEnvironment from plugin_registry.kinds) nor a Lightning plugin"
    )


def registry_plugins(
    plugins: Iterable[Any] | Any,
    *,
    strategy: Any = None,
    registry: Registry | None = None,
) -> list[Any]:
    """``plugins=[...]`` for ``Fabric`` and the ``Trainer`` alike.

    Names and records are loaded through the registry, instances adapted,
    Lightning's own plugins passed through. Give ``strategy`` when it is FSDP,
    DeepSpeed or XLA (their precision adapters differ).
    """
    from plugin_registry._default import default_registry

    reg = registry or default_registry()
    adapted = []
    for item in as_list(plugins):
        record = reg.get(item) if isinstance(item, str) else item
        built = reg.load(item) if isinstance(item, (str, PluginInfo)) else item
        known = record if isinstance(record, PluginInfo) else None
        adapted.append(to_lightning(built, strategy=strategy, record=known, registry=reg))
    return adapted


def resolution_plugins(
    resolution: Resolution,
    *,
    strategy: Any = None,
    registry: Registry | None = None,
) -> list[Any]:
    """The resolver's three choices, ready for ``Fabric(plugins=...)`` or the Trainer."""
    if strategy is None:
        strategy = resolution.settings.strategy
    return [
        to_lightning(
            choice.load(registry), strategy=strategy, record=choice.record, registry=registry
        )
        for choice in resolution.choices
    ]
