"""What the resolver decided, and why: plain records, a table, a lock.

A :class:`Resolution` holds one :class:`Choice` per slot (precision,
checkpoint IO, cluster environment) and every :class:`Candidate` considered
for it, ranked, with the reasons each was accepted or rejected.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from plugin_registry.kinds import KINDS, SPECS, Kind
from plugin_registry.machine import Hardware
from plugin_registry.names import Spec
from plugin_registry.records import PluginInfo
from plugin_registry.resolver.lockfile import Lock, LockedPlugin
from plugin_registry.resolver.settings import Settings

if TYPE_CHECKING:
    from plugin_registry.registry import Registry

SLOT_TITLES = {s.name: s.slot for s in SPECS}


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class _Pick:
    """What a candidate and a choice share: one concrete plugin name for a slot."""

    kind: Kind
    name: str
    #: None for an instance given to ``resolve(plugins=[...])``.
    record: PluginInfo | None
    parameters: Mapping[str, Any]
    instance: Any = dataclasses.field(default=None, compare=False)

    @property
    def provider(self) -> str:
        return self.record.provider if self.record is not None else "<instance>"


def _variant(record: PluginInfo | None, name: str) -> int:
    """0 for the name a parametrised record means by default (its ``parameters`` where
    they are among the choices, else the first choices), else 1 + its declared place."""
    if record is None or not record.name_parameters:
        return 0
    default = {
        field: str(record.parameters[field])
        if str(record.parameters.get(field)) in choices
        else choices[0]
        for field, choices in record.name_parameters.items()
    }
    for place, exp in enumerate(record.expansions(aliases=False)):
        if exp.name == name:
            return 0 if dict(exp.parameters) == default else place + 1
    return 0


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class Candidate(_Pick):
    """One concrete plugin name considered for a slot, with the verdict and its reasons."""

    accepted: bool
    reasons: tuple[str, ...]
    explicit: bool = False
    priority: int = 0
    specificity: int = 0

    @property
    def rank_key(self) -> tuple[int, int, int, int, str, str]:
        """Explicit first, then priority, specificity, the record's default name before its
        other names (``zstd-{level}`` with ``level=3``: ``zstd-3``, then the rest in the
        order declared), name, provider: deterministic."""
        dist = (self.record.distribution or "") if self.record is not None else ""
        return (
            0 if self.explicit else 1,
            -self.priority,
            -self.specificity,
            _variant(self.record, self.name),
            self.name,
            dist,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "provider": self.provider,
            "parameters": dict(self.parameters),
            "accepted": self.accepted,
            "explicit": self.explicit,
            "priority": self.priority,
            "specificity": self.specificity,
            "reasons": list(self.reasons),
        }

    def choose(self, reason: str) -> Choice:
        return Choice(
            kind=self.kind,
            name=self.name,
            record=self.record,
            parameters=dict(self.parameters),
            instance=self.instance,
            reason=reason,
        )


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class Choice(_Pick):
    """The plugin a slot gets: a record (loaded on demand) or a given instance."""

    reason: str

    def load(self, registry: Registry | None = None) -> Any:
        """Build this plugin (an instance given to ``resolve`` passes through)."""
        if self.instance is not None:
            return self.instance
        from plugin_registry._default import default_registry

        return (registry or default_registry()).load(self.spec, **dict(self.parameters))

    @property
    def spec(self) -> str:
        """The qualified request that names exactly this plugin: ``kind/dist:name``."""
        dist = self.record.distribution if self.record is not None else None
        return str(Spec(self.kind, dist, self.name))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "provider": self.provider,
            "distribution": self.record.distribution if self.record else None,
            "version": self.record.version if self.record else None,
            "target": self.record.target if self.record else type(self.instance).__qualname__,
            "parameters": dict(self.parameters),
            "reason": self.reason,
        }


@dataclasses.dataclass(frozen=True, eq=False)
class Resolution:
    """The plugins for one job, the settings they were chosen for, and why."""

    precision: Choice
    checkpoint_io: Choice
    cluster_environment: Choice
    candidates: Mapping[str, tuple[Candidate, ...]]
    #: The settled settings (``accelerator``, ``strategy``, ``devices`` as found here).
    settings: Settings
    hardware: Hardware
    notes: tuple[str, ...] = ()

    @property
    def choices(self) -> tuple[Choice, Choice, Choice]:
        return (self.precision, self.checkpoint_io, self.cluster_environment)

    def names(self) -> dict[str, str]:
        """``{"precision": "bf16-mixed", ...}``: the short answer."""
        return {c.kind: c.name for c in self.choices}

    def load(self, registry: Registry | None = None) -> list[Any]:
        """Build the three plugins (instances given to ``resolve`` pass through)."""
        return [choice.load(registry) for choice in self.choices]

    def lock(self) -> Lock:
        """The names, providers, versions and parameters to write down (see lockfile.py)."""
        from plugin_registry.names import normalize_distribution
        from plugin_registry.requirements import requirement_name

        plugins: list[LockedPlugin] = []
        libraries: dict[str, str | None] = {"torch": self.hardware.version("torch")}
        for choice in self.choices:
            record = choice.record
            if record is None:
                cls_ = type(choice.instance)
                target = f"{cls_.__module__}:{cls_.__qualname__}"
                plugins.append(
                    LockedPlugin(choice.kind, choice.name, None, None, target, {}, instance=True)
                )
                continue
            plugins.append(
                LockedPlugin(
                    choice.kind,
                    choice.name,
                    record.distribution,
                    record.version,
                    record.target,
                    dict(choice.parameters),
                )
            )
            for text in record.requires:
                name = normalize_distribution(requirement_name(text))
                libraries[name] = self.hardware.version(name)
        return Lock(self.settings, tuple(plugins), libraries)

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings.to_dict(),
            "hardware": self.hardware.summary(),
            "chosen": {c.kind: c.to_dict() for c in self.choices},
            "candidates": {
                kind: [c.to_dict() for c in self.candidates.get(kind, ())] for kind in KINDS
            },
            "notes": list(self.notes),
        }

    def explain(self, width: int = 100, encoding: str = "utf-8") -> str:
        """The decision as tables, one per slot, ranked as the resolver ranked them.

        For an ``encoding`` that has no box characters (``ascii``), the tables
        are drawn with ASCII.
        """
        from rich.console import Console
        from rich.table import Table

        from plugin_registry._text import EncodedBuffer
        from plugin_registry._text import markup as escape

        buffer = EncodedBuffer(encoding)
        console = Console(file=buffer, width=width, color_system=None, highlight=False)
        settings = ", ".join(f"{k}={v!r}" for k, v in self.settings.to_dict().items())
        console.print(escape(f"Resolution for {settings}"))
        console.print(escape(f"Hardware: {self.hardware.summary()}"))
        for note in self.notes:
            console.print(escape(f"Note: {note}"))
        for choice in self.choices:
            rows = self._rows(choice)
            providers = sorted({provider for _, _, provider, _, _ in rows})
            title = f"{SLOT_TITLES[choice.kind]}: {choice.name} ({choice.reason})"
            table = Table(
                title=escape(title + (f", all from {providers[0]}" if len(providers) == 1 else "")),
                title_justify="left",
                show_lines=False,
                show_edge=False,
            )
            # Names never break; the reasons take what width is left. The provider is a
            # column only where it varies; the priority is in the reasons where it counts.
            table.add_column("#", justify="right", no_wrap=True)
            table.add_column("candidate", no_wrap=True)
            if len(providers) > 1:
                table.add_column("provider", no_wrap=True)
            table.add_column("verdict", no_wrap=True)
            table.add_column("reasons", ratio=1, min_width=16, overflow="fold")
            for rank, name, provider, verdict, reasons in rows:
                cells = [rank, name, *([provider] if len(providers) > 1 else []), verdict]
                table.add_row(*map(escape, cells), escape(reasons))
            console.print(table)
        return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"

    def _rows(self, choice: Choice) -> list[tuple[str, str, str, str, str]]:
        """``(rank, candidate, provider, verdict, reasons)``, ranked; the names of one
        parametrised record that share a verdict and its reasons are one row (the best of
        them, "and 21 more"), so 22 compression levels do not take 22 lines."""
        rows: list[tuple[str, str, str, str, str]] = []
        seen: dict[tuple[int, str, tuple[str, ...]], int] = {}
        grouped: dict[int, list[str]] = {}
        for rank, cand in enumerate(self.candidates.get(choice.kind, ()), start=1):
            chosen = cand.name == choice.name and cand.record == choice.record
            verdict = "chosen" if chosen else ("accepted" if cand.accepted else "rejected")
            if cand.record is not None and cand.record.name_parameters and not chosen:
                key = (id(cand.record), verdict, cand.reasons)
                if key in seen:
                    grouped.setdefault(seen[key], []).append(cand.name)
                    continue
                seen[key] = len(rows)
            dist = cand.record.distribution if cand.record is not None else None
            rows.append(
                (str(rank), cand.name, dist or cand.provider, verdict, "; ".join(cand.reasons))
            )
        for index, more in grouped.items():
            place, name, provider, verdict, reasons = rows[index]
            shown = ", ".join(more[:3]) + (", ..." if len(more) > 3 else "")
            rows[index] = (
                place,
                name,
                provider,
                verdict,
                f"{reasons}; and {len(more)} more like it ({shown})",
            )
        return rows

    def __str__(self) -> str:
        return self.explain()
