"""Pick one precision, one checkpoint IO and one cluster environment for a job.

``resolve(precision="bf16-mixed", strategy="fsdp")`` settles the settings
against the hardware (:mod:`plugin_registry.resolver.hardware`), considers every
installed plugin for each slot and returns a
:class:`~plugin_registry.resolver.resolution.Resolution` saying what it chose and why.

The rules, in the order they apply:

1. **An explicitly named plugin wins its slot** (``plugins=[...]``, or a
   precision plugin's name given as ``precision=``). If it cannot work here,
   that is an error naming why, never a silent fallback. Two plugins for one
   slot, or ``precision=`` together with a precision plugin, is an error, as
   in Lightning.
2. **A candidate is rejected** when a library it requires is missing from the
   hardware record; it does not run on the chosen accelerator; a device fails
   one of its ``constraints``; the requested precision needs a dtype a device
   lacks; it is made for another strategy family (or the strategy brings its
   own precision: fsdp -> FSDPPrecision, deepspeed -> DeepSpeedPrecision,
   xla -> XLAPrecision); it cannot be sharded but the strategy shards
   parameters; or another provider of its name is preferred.
3. **Accepted candidates rank** by priority (the record's, or the user's
   override from :mod:`plugin_registry.resolver.preferences`), then specificity
   (constraints it checks, a strategy family, no CPU in its accelerators),
   then name, then distribution: the same answer every time.
4. **The cluster environment** is the highest-ranked one whose ``detect()``
   says its launcher started this process (torchrun inside a SLURM
   allocation is torchelastic, as in Lightning).
5. ``precision="16-mixed"`` on the CPU becomes ``"bf16-mixed"`` with a
   :class:`~plugin_registry.errors.PluginRegistryWarning`, as Lightning does it.
6. Nothing accepted is an error listing each candidate's reasons and the
   settings that would work on this hardware.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from plugin_registry.errors import ConfigurationError
from plugin_registry.errors import ResolutionError as ResolutionError
from plugin_registry.kinds.precision import PRECISIONS
from plugin_registry.names import Spec, normalize_name
from plugin_registry.records import KINDS, Kind, PluginInfo
from plugin_registry.resolver.detection import launched_by
from plugin_registry.resolver.hardware import Hardware, detect_hardware
from plugin_registry.resolver.lockfile import Lock
from plugin_registry.resolver.preferences import Preferences, targets
from plugin_registry.resolver.resolution import Candidate, Choice, Resolution
from plugin_registry.resolver.settings import Settings, parse_settings
from plugin_registry.resolver.settled_job import Job, settle
from plugin_registry.resolver.verdicts import Judge, serves, specificity, unmet_on

if TYPE_CHECKING:
    from plugin_registry.registry import Registry


def _check_type(argument: str, value: object, types: tuple[type, ...], wanted: str) -> None:
    if not isinstance(value, types):
        raise TypeError(f"{argument} must be {wanted}, got {type(value).__name__} {value!r:.80}")


def resolve(
    precision: str | int | None = None,
    accelerator: str = "auto",
    strategy: str = "auto",
    devices: str | int | Sequence[int] = "auto",
    num_nodes: int = 1,
    plugins: Iterable[Any] | None = None,
    *,
    hardware: Hardware | str | os.PathLike[str] | None = None,
    registry: Registry | None = None,
    preferences: Preferences | None = None,
    lock: Lock | str | os.PathLike[str] | None = None,
) -> Resolution:
    """Choose the plugins for these settings on this (or the given) hardware.

    ``hardware`` is a record or a file written by ``plugin-registry hardware
    --json``; left out, this machine is detected. ``lock`` (a Lock or its
    file) reloads exactly the plugins it names and fails if any differs; a
    setting given beside it must agree with it.
    """
    resolver = Resolver.on(registry, hardware, preferences)
    settings = resolver.settings(precision, accelerator, strategy, devices, num_nodes, plugins)
    if lock is not None:
        return resolver.resolve_locked(lock, settings)
    return resolver.resolve(settings)


class Resolver:
    """The rules of the module docstring over a fixed list of records."""

    def __init__(
        self,
        registry: Registry,
        records: Sequence[PluginInfo],
        hardware: Hardware,
        preferences: Preferences,
        *,
        recheck: bool = True,
    ) -> None:
        """``recheck=False`` trusts each record's availability (computed on this machine)."""
        self.registry = registry
        self.hardware = hardware
        self.preferences = preferences
        self.records = (
            [
                dataclasses.replace(r, available=not why, unavailable_reason=why)
                for r in records
                for why in (str(unmet_on(r, hardware)),)
            ]
            if recheck
            else list(records)
        )
        self.prefer = dict(preferences.prefer)
        self.priorities = targets(preferences, self.records)
        # Pins keep their kind: a pin of 'precision/torch' says nothing of the
        # checkpoint IO named torch.
        self.pins = dict(registry.control.pins)
        self.judge = Judge(self.records, self._preferred, hardware if recheck else None)

    @classmethod
    def on(
        cls,
        registry: Registry | None = None,
        hardware: Hardware | str | os.PathLike[str] | None = None,
        preferences: Preferences | None = None,
    ) -> Resolver:
        """A resolver over ``registry``'s plugins (the default registry's when None) for
        ``hardware`` (a record, its file, or None for this machine)."""
        from plugin_registry._default import default_registry
        from plugin_registry.registry import Registry

        _check_type("registry", registry, (Registry, type(None)), "a Registry or None")
        _check_type(
            "hardware",
            hardware,
            (Hardware, str, os.PathLike, type(None)),
            "a Hardware record or the path of its file (plugin-registry hardware --json)",
        )
        _check_type(
            "preferences",
            preferences,
            (Preferences, type(None)),
            "a Preferences (Preferences.load() reads pyproject.toml) or None",
        )
        registry = registry or default_registry()
        if hardware is None:
            # Discovery already checked the requirements against this machine.
            hw, local = detect_hardware(registry), True
        elif isinstance(hardware, Hardware):
            hw, local = hardware, False
        else:
            hw, local = Hardware.load(hardware), False
        prefs = preferences if preferences is not None else Preferences.load()
        return cls(registry, registry.list_plugins(), hw, prefs, recheck=not local)

    # -- entry ---------------------------------------------------------------

    def settings(self, *args: Any, **given: Any) -> Settings:
        """:func:`parse_settings` of these arguments, with the precision plugins and
        third-party accelerators known to this resolver accepted."""
        summaries = {n: r.summary for r in self.records if r.kind == "precision" for n in r.names()}
        extra = {a for r in self.records for a in r.accelerators} | set(self.hardware.accelerators)
        return parse_settings(
            *args,
            **given,
            plugin_names=summaries,
            plugin_summaries=summaries,
            extra_accelerators=sorted(extra - {"cpu", "cuda", "mps", "xla", "any"}),
        )

    def resolve(self, settings: Settings | None = None) -> Resolution:
        """The :class:`Resolution` for ``settings`` (checked by :meth:`settings`)."""
        settings = settings if settings is not None else Settings()
        explicit = self._explicit(settings)
        notes = list(settings.notes)
        job = self._settle(settings, explicit, notes)
        chosen: dict[str, Choice] = {}
        ranked: dict[str, tuple[Candidate, ...]] = {}
        for kind in KINDS:
            chosen[kind], ranked[kind] = self._fill(kind, job, explicit.get(kind))
        return Resolution(
            precision=chosen["precision"],
            checkpoint_io=chosen["checkpoint_io"],
            cluster_environment=chosen["cluster_environment"],
            candidates=ranked,
            settings=job.settings(),
            hardware=self.hardware,
            notes=tuple(notes),
        )

    def resolve_locked(
        self, lock: Lock | str | os.PathLike[str], given: Settings | None = None
    ) -> Resolution:
        """Exactly the locked plugins and settings; a ResolutionError if this machine
        differs, a ConfigurationError if ``given`` contradicts the lock."""
        _check_type("lock", lock, (Lock, str, os.PathLike), "a Lock or the path of its file")
        locked = lock if isinstance(lock, Lock) else Lock.read(lock)
        where = "the lock" if isinstance(lock, Lock) else f"the lock {os.fspath(lock)!r}"
        for plugin in locked.plugins:
            if plugin.instance:
                raise ResolutionError(
                    f"the locked {plugin.kind} plugin is an instance of {plugin.target} that was "
                    "passed to resolve(); a lock reloads named plugins only: register it "
                    "(plugin_registry.register) or package it, and name it",
                    reason="lock-mismatch",
                )
        if given is not None:
            self._check_against_lock(given, locked, where)
        # The lock's settings, its precision named by the locked plugin instead.
        saved = {k: v for k, v in locked.settings.to_dict().items() if k != "precision"}
        settings = self.settings(**saved, plugins=[p.spec for p in locked.plugins])
        resolution = self.resolve(settings)
        # The settled precision is the plugin's name on both sides once it is named.
        diffs = [
            d
            for d in locked.differences(resolution.lock())
            if not d.startswith("setting precision:")
        ]
        if diffs:
            raise ResolutionError(
                "this machine does not match the lock:\n  - "
                + "\n  - ".join(diffs)
                + "\nInstall the locked versions, or resolve again and write a new lock",
                reason="lock-mismatch",
            )
        return resolution

    # -- settings --------------------------------------------------------------

    def _settle(
        self, settings: Settings, explicit: Mapping[str, Candidate], notes: list[str]
    ) -> Job:
        named = explicit["precision"].name if "precision" in explicit else None
        return settle(settings, self.hardware, named, notes)

    def _check_against_lock(self, given: Settings, locked: Lock, where: str) -> None:
        """Each setting or plugin the caller gave beside a lock must be what it says."""
        way_out = "leave it out (the lock decides), or resolve without the lock and write a new one"
        explicit = self._explicit(given)
        for kind, cand in explicit.items():
            mine = locked.plugin(kind)
            if cand.record is None or (cand.name, cand.record.distribution) != (
                mine.name,
                mine.distribution,
            ):
                raise ConfigurationError(
                    f"the {kind} plugin {cand.name!r} ({cand.provider}) contradicts {where}, "
                    f"which names {mine.name!r} ({mine.distribution or mine.target}); {way_out}",
                    subject="setting",
                )
        settled = self._settle(given, explicit, []).settings().to_dict()
        saved = locked.settings.to_dict()
        asked = given.given()
        if "precision" in explicit:
            asked.pop("precision", None)
        for key, value in asked.items():
            ours, theirs = settled[key], saved[key]
            if ours != theirs:
                shown = f"{key}={value!r}" + (f" ({ours!r} here)" if ours != value else "")
                raise ConfigurationError(
                    f"{shown} contradicts {where}, which was resolved for {key}={theirs!r}; "
                    f"{way_out}",
                    subject="setting",
                )

    def _explicit(self, settings: Settings) -> dict[str, Candidate]:
        """The plugins the user named, one per slot."""
        out: dict[str, Candidate] = {}
        given: dict[str, str] = {}
        for item in settings.plugins:
            cand, label = self._explicit_one(item)
            if cand.kind in out:
                raise ResolutionError(
                    f"plugins=[...] names two {cand.kind} plugins, {given[cand.kind]} and "
                    f"{label}; a job has one {cand.kind} plugin: keep one of them"
                )
            out[cand.kind] = cand
            given[cand.kind] = label
        if "precision" in out and settings.precision is not None:
            raise ResolutionError(
                f"received both precision={settings.precision!r} and the precision plugin "
                f"{given['precision']} in plugins=[...]; choose one (as Lightning requires)"
            )
        if settings.precision is not None and settings.precision not in PRECISIONS:
            # precision="bitsandbytes-nf4": a plugin name is a request for that plugin.
            out["precision"] = self._named(settings.precision, "precision")
        return out

    def _explicit_one(self, item: Any) -> tuple[Candidate, str]:
        if isinstance(item, str):
            return self._named(item, None), repr(item)
        if isinstance(item, PluginInfo):
            first = item.expansions()[0]
            spec = str(Spec(item.kind, item.distribution, first.name))
            return self._named(spec, item.kind), repr(first.name)
        from plugin_registry.kinds import base_class

        for kind in KINDS:
            base = base_class(kind)
            if base is not None and isinstance(item, base):
                label = f"{type(item).__name__}()"
                cand = Candidate(
                    kind=kind,
                    name=type(item).__name__,
                    record=None,
                    parameters={},
                    instance=item,
                    accepted=True,
                    reasons=("explicitly requested",),
                    explicit=True,
                )
                return cand, label
        raise ConfigurationError(
            f"plugins=[...] holds {item!r:.80}, which is neither a plugin name, a PluginInfo "
            "nor an instance of plugin_registry.kinds.Precision, CheckpointIO or "
            "ClusterEnvironment (give Lightning's own plugins to Lightning directly)",
            subject="setting",
        )

    def _named(self, spec: str, kind: str | None) -> Candidate:
        match = self.registry.find(spec, kind)
        record = next(
            (
                r
                for r in self.records
                if (r.kind, r.name, r.distribution)
                == (match.record.kind, match.record.name, match.record.distribution)
            ),
            match.record,
        )
        name = record.concrete_name(match.parameters) or record.expansions(aliases=False)[0].name
        return self._candidate(record, name, match.parameters, explicit=True)

    # -- slots ---------------------------------------------------------------------

    def _fill(
        self, kind: Kind, job: Job, explicit: Candidate | None
    ) -> tuple[Choice, tuple[Candidate, ...]]:
        if explicit is not None:
            judged = self.judge.verdict(explicit, job) if explicit.record is not None else explicit
            if not judged.accepted:
                raise ResolutionError(
                    f"{kind} plugin {explicit.name!r} ({explicit.provider}) was explicitly "
                    f"requested but cannot be used here: {'; '.join(judged.reasons)}"
                    + self._what_would_work(kind, job)
                )
            judged = dataclasses.replace(judged, reasons=("explicitly requested",))
            return judged.choose("explicitly requested"), (judged,)
        candidates = sorted(
            (self.judge.verdict(c, job) for c in self._candidates(kind, job)),
            key=lambda c: (not c.accepted, c.rank_key),
        )
        if kind == "cluster_environment":
            return self._detect(candidates, job)
        accepted = [c for c in candidates if c.accepted]
        if not accepted:
            raise self._nothing(kind, job, candidates)
        best = accepted[0]
        reason = "highest ranked" if len(accepted) > 1 else "only candidate accepted"
        return best.choose(reason), tuple(candidates)

    def _candidates(self, kind: Kind, job: Job) -> list[Candidate]:
        out: list[Candidate] = []
        for record in self.records:
            if record.kind != kind:
                continue
            for exp in record.expansions(aliases=False):
                if kind == "precision" and not serves(record, exp.name, exp.parameters, job):
                    continue
                out.append(self._candidate(record, exp.name, exp.parameters))
        return out

    def _candidate(
        self,
        record: PluginInfo,
        name: str,
        parameters: Mapping[str, Any],
        *,
        explicit: bool = False,
    ) -> Candidate:
        """``name`` (one of ``record``'s concrete names) before it is judged."""
        return Candidate(
            kind=record.kind,
            name=name,
            record=record,
            parameters={**record.parameters, **parameters},
            accepted=True,
            reasons=("explicitly requested",) if explicit else (),
            explicit=explicit,
            priority=self._priority(record, name),
            specificity=specificity(record),
        )

    def _preferred(self, kind: str, name: str) -> str | None:
        return self.prefer.get(name) or self.pins.get((kind, name)) or self.pins.get((None, name))

    def _detect(
        self, candidates: list[Candidate], job: Job
    ) -> tuple[Choice, tuple[Candidate, ...]]:
        judged: list[Candidate] = []
        winner: Candidate | None = None
        for cand in candidates:
            if not cand.accepted:
                judged.append(cand)
                continue
            assert cand.record is not None
            found = launched_by(self.registry, cand.record)
            if isinstance(found, str):
                judged.append(dataclasses.replace(cand, accepted=False, reasons=(found,)))
            elif not found:
                judged.append(
                    dataclasses.replace(
                        cand,
                        accepted=False,
                        reasons=("not detected: its launcher did not start this process",),
                    )
                )
            elif winner is None:
                above = len(judged)  # asked before it (accepted ones rank first), not detected
                why = (
                    f"detected; asked first (priority {cand.priority})"
                    if not above
                    else f"detected (priority {cand.priority}); "
                    + (
                        "the one ranked above it was not"
                        if above == 1
                        else f"the {above} ranked above it were not"
                    )
                )
                winner = dataclasses.replace(cand, reasons=(why,))
                judged.append(winner)
            else:
                judged.append(
                    dataclasses.replace(
                        cand,
                        reasons=(
                            f"also detected; {winner.name!r} ranks above it (priority "
                            f"{winner.priority} > {cand.priority})",
                        ),
                    )
                )
        if winner is None:
            raise self._nothing("cluster_environment", job, judged)
        judged.sort(key=lambda c: (not c.accepted, c.rank_key))
        return winner.choose("detected"), tuple(judged)

    # -- errors ----------------------------------------------------------------------

    def _nothing(self, kind: Kind, job: Job, candidates: Sequence[Candidate]) -> ResolutionError:
        what = f"precision {job.precision!r}" if kind == "precision" else f"a {kind} plugin"
        lines = [
            f"cannot resolve {what} for accelerator {job.accelerator!r}, strategy "
            f"{job.strategy!r} on {self.hardware.summary()}:"
        ]
        if not candidates:
            lines.append("  no installed plugin provides it")
        fixes: list[str] = []
        for cand in candidates:
            lines.append(f"  - {cand.name} ({cand.provider}): {'; '.join(cand.reasons)}")
            fix = self.judge.fix(cand.record) if cand.record is not None else ""
            if fix and fix not in fixes:
                fixes.append(fix)
        lines.extend(f"To install what is missing: {fix}" for fix in fixes)
        return ResolutionError("\n".join(lines) + self._what_would_work(kind, job))

    def _what_would_work(self, kind: Kind, job: Job) -> str:
        if kind != "precision":
            judged = sorted(
                (self.judge.verdict(c, job) for c in self._candidates(kind, job)),
                key=lambda c: c.rank_key,
            )
            works = [c.name for c in judged if c.accepted]
            return f"\nWhat would work here: {', '.join(map(repr, works))}" if works else ""
        works = []
        for value in PRECISIONS:
            trial = dataclasses.replace(job, precision=value)
            if value != job.precision and any(
                self.judge.verdict(c, trial).accepted for c in self._candidates(kind, trial)
            ):
                works.append(value)
        if not works:
            return ""
        return f"\nWhat would work here with strategy {job.strategy!r}: precision=" + ", ".join(
            map(repr, works)
        )

    def _priority(self, record: PluginInfo, name: str) -> int:
        """The user's priority for this name of the record, else for the whole record,
        else the record's own."""
        found = self.priorities.get((record, normalize_name(name)))
        if found is None:
            found = self.priorities.get((record, None))
        return record.priority if found is None else found
