"""Which registry plugins an Accelerator runs with: names, records and instances sorted
by kind, ``precision=`` resolved, plugins not made for Accelerate refused."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from plugin_registry.kinds.checkpoint_io import CheckpointIO
from plugin_registry.kinds.cluster_environment import ClusterEnvironment
from plugin_registry.kinds.precision import OWN_PRECISION_FAMILIES, Precision
from plugin_registry.records import PluginInfo, as_list

if TYPE_CHECKING:
    from plugin_registry.registry import Registry
    from plugin_registry.resolver.resolution import Resolution

__all__ = ["Chosen", "choose"]

_KIND_OF = {
    Precision: "precision",
    CheckpointIO: "checkpoint_io",
    ClusterEnvironment: "cluster_environment",
}


@dataclasses.dataclass
class Chosen:
    """One plugin (or None) per kind, the records they came from, and the resolution
    behind ``precision="auto"`` or a precision setting."""

    precision: Precision | None = None
    checkpoint_io: CheckpointIO | None = None
    cluster_environment: ClusterEnvironment | None = None
    records: dict[str, PluginInfo] = dataclasses.field(default_factory=dict)
    resolution: Resolution | None = None


def _kind(plugin: Any) -> str:
    for base, kind in _KIND_OF.items():
        if isinstance(plugin, base):
            return kind
    module = type(plugin).__module__.split(".")[0]
    if module in ("lightning", "pytorch_lightning"):
        raise TypeError(
            f"{type(plugin).__name__} is one of Lightning's plugins, which Accelerate cannot "
            "run; name the registry's plugin instead (plugin-registry list shows them)"
        )
    raise TypeError(
        f"{plugin!r:.80} is not a registry plugin (Precision, CheckpointIO or "
        "ClusterEnvironment from plugin_registry.kinds), a name or a record"
    )


def _refuse_foreign(plugin: Any, record: PluginInfo | None) -> None:
    """A precision plugin made for Lightning's FSDP, DeepSpeed or XLA strategy
    needs that strategy's engine, which Accelerate runs its own way."""
    if record is None or not isinstance(plugin, Precision):
        return
    families = [s for s in record.strategies if s in OWN_PRECISION_FAMILIES]
    if families:
        family = families[0]
        raise ValueError(
            f"precision plugin {record.name!r} is made for Lightning's {family} strategy, "
            f"which Accelerate does not run: Accelerate's {family} brings its own precision "
            f"(its {family} plugin with mixed_precision='bf16' or 'fp16'); for plain or DDP "
            "training name a precision plugin without a strategy (plugin-registry list "
            "--kind precision)"
        )


def choose(
    plugins: Any,
    precision: Any,
    *,
    mixed_precision: Any,
    accelerator: str,
    registry: Registry | None,
) -> Chosen:
    """The plugins of ``Accelerator(plugins=..., precision=...)``."""
    from plugin_registry._default import default_registry

    reg = registry or default_registry()
    chosen = Chosen()
    for item in as_list(plugins):
        record = reg.get(item) if isinstance(item, str) else item
        built = reg.load(item) if isinstance(item, (str, PluginInfo)) else item
        kind = _kind(built)
        known = record if isinstance(record, PluginInfo) else None
        _refuse_foreign(built, known)
        if getattr(chosen, kind) is not None:
            raise ValueError(
                f"plugins=[...] names two {kind.replace('_', ' ')} plugins "
                f"({getattr(chosen, kind)!r:.60} and {built!r:.60}); give one"
            )
        setattr(chosen, kind, built)
        if known is not None:
            chosen.records[kind] = known
    if precision is not None:
        if chosen.precision is not None:
            raise ValueError(
                f"precision={precision!r} and a precision plugin in plugins=[...] "
                f"({chosen.precision!r:.60}): give one"
            )
        _resolve_precision(chosen, precision, accelerator, reg)
    if chosen.precision is not None and mixed_precision not in (None, "no"):
        raise ValueError(
            f"mixed_precision={mixed_precision!r} is Accelerate's own precision, and a "
            f"registry precision plugin ({chosen.precision!r:.60}) was given too: give one "
            "(the registry's 'bf16-mixed' is Accelerate's 'bf16', '16-mixed' its 'fp16')"
        )
    return chosen


def _resolve_precision(chosen: Chosen, precision: Any, accelerator: str, reg: Registry) -> None:
    from plugin_registry.resolver import resolve

    given = [p for p in (chosen.checkpoint_io, chosen.cluster_environment) if p is not None]
    resolution = resolve(
        precision=None if precision == "auto" else precision,
        accelerator=accelerator,
        plugins=given,
        registry=reg,
    )
    chosen.resolution = resolution
    choice = resolution.precision
    built = choice.load(reg)
    _refuse_foreign(built, choice.record)
    chosen.precision = built
    if choice.record is not None:
        chosen.records["precision"] = choice.record
