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
   :class:`ResolutionWarning`, as Lightning does it.
6. Nothing accepted is an error listing each candidate's reasons and the
   settings that would work on this hardware.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from plugin_registry.errors import LockMismatchError
from plugin_registry.errors import ResolutionError as ResolutionError
from plugin_registry.errors import ResolutionWarning as ResolutionWarning
from plugin_registry.kinds.precision import PRECISION_DTYPE, PRECISIONS
from plugin_registry.names import Spec, normalize_name
from plugin_registry.records import KINDS, Kind, PluginInfo
from plugin_registry.resolver.detection import launched_by
from plugin_registry.resolver.hardware import Device, Hardware, detect_hardware
from plugin_registry.resolver.lock import Lock
from plugin_registry.resolver.preferences import Preferences
from plugin_registry.resolver.resolution import Candidate, Choice, Resolution
from plugin_registry.resolver.settings import (
    OWN_PRECISION_FAMILIES,
    STRATEGIES,
    InvalidSettingError,
    Settings,
    parse_settings,
)

if TYPE_CHECKING:
    from plugin_registry.registry import Registry

# Lightning's ModelParallelStrategy accepts only these.
_MODEL_PARALLEL_PRECISIONS = ("32-true", "bf16-mixed", "bf16-true", "16-true")
# accelerator="auto" tries these in Lightning's order; third-party kinds come before the CPU.
_AUTO_ORDER = ("xla", "mps", "cuda")


@dataclasses.dataclass(eq=False)
class _Job:
    """The settled settings the candidates are judged against."""

    precision: str
    accelerator: str
    strategy: str
    devices: tuple[Device, ...]
    device_count: int
    num_nodes: int
    hardware: Hardware

    @property
    def family(self) -> str:
        return STRATEGIES[self.strategy].family

    @property
    def shards_parameters(self) -> bool:
        return STRATEGIES[self.strategy].shards_parameters

    def judged_devices(self) -> tuple[Device, ...]:
        if self.accelerator == "cpu":
            return (
                Device(
                    "cpu",
                    0,
                    self.hardware.cpu_capability,
                    self.hardware.cpu_dtypes,
                    {"cores": str(self.hardware.cpu_cores)},
                ),
            )
        return self.devices


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
    file) reloads exactly the plugins it names and fails if any differs.
    """
    from plugin_registry._default import default_registry

    registry = registry or default_registry()
    if lock is not None:
        return resolve_locked(lock, hardware=hardware, registry=registry, preferences=preferences)
    if hardware is None:
        hw = detect_hardware(registry)
        # Discovery already checked the requirements against this machine.
        local = True
    elif isinstance(hardware, Hardware):
        hw, local = hardware, False
    else:
        hw, local = Hardware.load(hardware), False
    prefs = preferences if preferences is not None else Preferences.load()
    records = registry.list_plugins()
    return Resolver(registry, records, hw, prefs, recheck=not local).resolve(
        precision, accelerator, strategy, devices, num_nodes, plugins
    )


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
                for why in (_unmet(r, hardware),)
            ]
            if recheck
            else list(records)
        )
        self.prefer = dict(preferences.prefer)
        # Pins keep their kind: a pin of 'precision/torch' says nothing of the
        # checkpoint IO named torch.
        self.pins = dict(registry.control.pins)

    # -- entry ---------------------------------------------------------------

    def resolve(
        self,
        precision: str | int | None,
        accelerator: str,
        strategy: str,
        devices: str | int | Sequence[int],
        num_nodes: int,
        plugins: Iterable[Any] | None,
    ) -> Resolution:
        precision_names = {n for r in self.records if r.kind == "precision" for n in r.names()}
        extra = {a for r in self.records for a in r.accelerators} | set(self.hardware.accelerators)
        settings = parse_settings(
            precision,
            accelerator,
            strategy,
            devices,
            num_nodes,
            plugins,
            plugin_names=precision_names,
            extra_accelerators=sorted(extra - {"cpu", "cuda", "mps", "xla", "any"}),
        )
        explicit = self._explicit(settings)
        notes = list(settings.notes)
        job = self._job(settings, explicit, notes)
        chosen: dict[str, Choice] = {}
        ranked: dict[str, tuple[Candidate, ...]] = {}
        for kind in KINDS:
            chosen[kind], ranked[kind] = self._fill(kind, job, explicit.get(kind))
        return Resolution(
            precision=chosen["precision"],
            checkpoint_io=chosen["checkpoint_io"],
            cluster_environment=chosen["cluster_environment"],
            candidates=ranked,
            settings={
                "precision": job.precision,
                "accelerator": job.accelerator,
                "strategy": job.strategy,
                "devices": job.device_count,
                "num_nodes": job.num_nodes,
            },
            hardware=self.hardware,
            notes=tuple(notes),
        )

    # -- settings --------------------------------------------------------------

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
                reasons = ("explicitly requested",)
                return Candidate(
                    kind, type(item).__name__, None, {}, True, reasons, True, instance=item
                ), label
        raise InvalidSettingError(
            f"plugins=[...] holds {item!r:.80}, which is neither a plugin name, a PluginInfo "
            "nor an instance of plugin_registry.kinds.Precision, CheckpointIO or "
            "ClusterEnvironment (give Lightning's own plugins to Lightning directly)"
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
        name = _concrete_name(record, match.parameters)
        return Candidate(
            record.kind,
            name,
            record,
            {**record.parameters, **match.parameters},
            True,
            ("explicitly requested",),
            True,
            self._priority(record, name),
            _specificity(record),
        )

    def _job(self, settings: Settings, explicit: Mapping[str, Candidate], notes: list[str]) -> _Job:
        hw = self.hardware
        accel = settings.accelerator
        if accel == "auto":
            present = set(hw.accelerators)
            third = sorted(present - {"cpu", *_AUTO_ORDER})
            accel = next((a for a in (*_AUTO_ORDER, *third) if a in present), "cpu")
        elif accel == "gpu":
            accel = next((a for a in ("mps", "cuda") if a in hw.accelerators), "")
            if not accel:
                raise ResolutionError(
                    f"accelerator='gpu' but this hardware has no CUDA or MPS device "
                    f"({hw.summary()}); use accelerator='cpu' or 'auto'"
                )
        elif accel != "cpu" and accel not in hw.accelerators:
            raise ResolutionError(
                f"accelerator={accel!r} but no {accel.upper()} device was found ({hw.summary()})"
                + (f"; detection problems: {'; '.join(hw.problems)}" if hw.problems else "")
                + "; use accelerator='cpu' or 'auto', or plan with a hardware record of the "
                "target machine (--hardware FILE)"
            )
        devices, count = self._devices(settings.devices, accel)
        strategy = self._strategy(settings.strategy, accel, count * settings.num_nodes, notes)
        if "precision" in explicit:
            precision = explicit["precision"].name
        else:
            precision = settings.precision or "32-true"
            if precision == "16-mixed" and accel == "cpu":
                note = (
                    "precision='16-mixed' on the CPU: float16 autocast is not supported there, "
                    "using 'bf16-mixed' instead (as Lightning does)"
                )
                notes.append(note)
                warnings.warn(note, ResolutionWarning, stacklevel=4)
                precision = "bf16-mixed"
        return _Job(precision, accel, strategy, devices, count, settings.num_nodes, hw)

    def _devices(
        self, devices: str | int | tuple[int, ...], accel: str
    ) -> tuple[tuple[Device, ...], int]:
        if accel == "cpu":
            if devices == "auto":
                return (), 1
            if isinstance(devices, int):
                return (), devices
            raise ResolutionError(
                f"devices={devices!r} on the CPU: give a number of processes (devices=2), "
                "not 'all' or device indices"
            )
        found = self.hardware.devices_of(accel)
        if devices in ("auto", "all"):
            return found, len(found)
        if isinstance(devices, int):
            if devices > len(found):
                raise ResolutionError(
                    f"devices={devices} but only {len(found)} {accel.upper()} device(s) found "
                    f"({self.hardware.summary()}); ask for at most {len(found)} or -1 for all"
                )
            return found[:devices], devices
        assert isinstance(devices, tuple)
        by_index = {d.index: d for d in found}
        missing = [i for i in devices if i not in by_index]
        if missing:
            raise ResolutionError(
                f"devices={list(devices)}: no {accel.upper()} device with index "
                f"{', '.join(map(str, missing))} (found indices {sorted(by_index)})"
            )
        return tuple(by_index[i] for i in devices), len(devices)

    def _strategy(self, strategy: str, accel: str, world: int, notes: list[str]) -> str:
        if strategy == "auto":
            if accel == "xla":
                return "xla" if world > 1 else "single_xla"
            return "ddp" if world > 1 else "single_device"
        if strategy == "fsdp" and accel == "xla":
            notes.append("strategy='fsdp' on XLA devices is 'xla_fsdp' (as Lightning does)")
            return "xla_fsdp"
        if strategy == "dp" and accel == "cpu":
            notes.append("strategy='dp' is not supported on CPUs: using 'ddp' (as Lightning does)")
            return "ddp"
        family = STRATEGIES[strategy].family
        if accel == "xla" and family != "xla":
            raise ResolutionError(
                f"strategy={strategy!r} does not run on XLA devices; use 'xla', 'xla_fsdp', "
                "'single_xla' or 'auto'"
            )
        if family == "xla" and accel != "xla":
            raise ResolutionError(
                f"strategy={strategy!r} needs accelerator='xla' (TPU or PJRT), but this job "
                f"runs on {accel}; use strategy 'ddp' or 'auto'"
            )
        return strategy

    # -- slots ---------------------------------------------------------------------

    def _fill(
        self, kind: Kind, job: _Job, explicit: Candidate | None
    ) -> tuple[Choice, tuple[Candidate, ...]]:
        if explicit is not None:
            judged = self._judge(explicit, job) if explicit.record is not None else explicit
            if not judged.accepted:
                raise ResolutionError(
                    f"{kind} plugin {explicit.name!r} ({explicit.provider}) was explicitly "
                    f"requested but cannot be used here: {'; '.join(judged.reasons)}"
                    + self._what_would_work(kind, job)
                )
            judged = dataclasses.replace(judged, reasons=("explicitly requested",))
            return _choice(judged, "explicitly requested"), (judged,)
        candidates = sorted(
            (self._judge(c, job) for c in self._candidates(kind, job)),
            key=lambda c: (not c.accepted, c.rank_key),
        )
        if kind == "cluster_environment":
            return self._detect(candidates, job)
        accepted = [c for c in candidates if c.accepted]
        if not accepted:
            raise self._nothing(kind, job, candidates)
        best = accepted[0]
        reason = "highest ranked" if len(accepted) > 1 else "only candidate accepted"
        return _choice(best, reason), tuple(candidates)

    def _candidates(self, kind: Kind, job: _Job) -> list[Candidate]:
        out: list[Candidate] = []
        for record in self.records:
            if record.kind != kind:
                continue
            for exp in record.expansions(aliases=False):
                if kind == "precision" and not _serves(record, exp.name, exp.parameters, job):
                    continue
                out.append(
                    Candidate(
                        kind,
                        exp.name,
                        record,
                        {**record.parameters, **exp.parameters},
                        True,
                        (),
                        False,
                        self._priority(record, exp.name),
                        _specificity(record),
                    )
                )
        return out

    def _judge(self, cand: Candidate, job: _Job) -> Candidate:
        record = cand.record
        assert record is not None
        reasons: list[str] = []
        if not record.available:
            reasons.append(record.unavailable_reason)
        if job.accelerator not in record.accelerators and "any" not in record.accelerators:
            reasons.append(_accelerator_reason(record, job.accelerator))
        else:
            reasons.extend(_constraint_reasons(record, job.judged_devices()))
        if cand.kind == "precision":
            reasons.extend(_precision_reasons(record, cand, job, self._made_for(job.family)))
        if (
            cand.kind == "cluster_environment"
            and job.family == "xla"
            and "xla" not in (record.accelerators)
        ):
            runtime = self._classes("cluster_environment", lambda r: "xla" in r.accelerators)
            reasons.append(
                f"strategy {job.strategy!r} takes its ranks from the XLA runtime"
                + (f" ({runtime})" if runtime else "")
            )
        preferred = self._preferred(cand.kind, cand.name)
        if (
            preferred
            and not cand.explicit
            and record.distribution
            and record.distribution != preferred
        ):
            reasons.append(f"{cand.name!r} is taken from {preferred} (preferred provider)")
        if not reasons:
            reasons.append("explicitly requested" if cand.explicit else _accept_reason(cand))
            return dataclasses.replace(cand, accepted=True, reasons=tuple(reasons))
        return dataclasses.replace(cand, accepted=False, reasons=tuple(reasons))

    def _made_for(self, family: str) -> tuple[str, set[str]]:
        """The plugin classes and names made for a strategy family, from the records."""
        made = [r for r in self.records if r.kind == "precision" and family in r.strategies]
        classes = self._classes("precision", lambda r: family in r.strategies)
        return classes, {n for r in made for n in r.names()}

    def _classes(self, kind: str, wanted: Callable[[PluginInfo], bool]) -> str:
        """``A or B``: the target classes of the records of ``kind`` that ``wanted`` picks."""
        names = sorted(
            {r.target.rpartition(":")[2].rpartition(".")[2]
             for r in self.records if r.kind == kind and wanted(r)}
        )  # fmt: skip
        return " or ".join(names)

    def _preferred(self, kind: str, name: str) -> str | None:
        return self.prefer.get(name) or self.pins.get((kind, name)) or self.pins.get((None, name))

    def _detect(
        self, candidates: list[Candidate], job: _Job
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
                winner = dataclasses.replace(
                    cand, reasons=(f"detected (priority {cand.priority}, asked first)",)
                )
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
        return _choice(winner, "detected"), tuple(judged)

    # -- errors ----------------------------------------------------------------------

    def _nothing(self, kind: Kind, job: _Job, candidates: Sequence[Candidate]) -> ResolutionError:
        what = f"precision {job.precision!r}" if kind == "precision" else f"a {kind} plugin"
        lines = [
            f"cannot resolve {what} for accelerator {job.accelerator!r}, strategy "
            f"{job.strategy!r} on {self.hardware.summary()}:"
        ]
        if not candidates:
            lines.append("  no installed plugin provides it")
        for cand in candidates:
            lines.append(f"  - {cand.name} ({cand.provider}): {'; '.join(cand.reasons)}")
        return ResolutionError("\n".join(lines) + self._what_would_work(kind, job))

    def _what_would_work(self, kind: Kind, job: _Job) -> str:
        if kind != "precision":
            judged = sorted(
                (self._judge(c, job) for c in self._candidates(kind, job)), key=lambda c: c.rank_key
            )
            works = [c.name for c in judged if c.accepted]
            return f"\nWhat would work here: {', '.join(map(repr, works))}" if works else ""
        works = []
        for value in PRECISIONS:
            trial = dataclasses.replace(job, precision=value)
            if value != job.precision and any(
                self._judge(c, trial).accepted for c in self._candidates(kind, trial)
            ):
                works.append(value)
        if not works:
            return ""
        return f"\nWhat would work here with strategy {job.strategy!r}: precision=" + ", ".join(
            map(repr, works)
        )

    def _priority(self, record: PluginInfo, name: str) -> int:
        return self.preferences.priority_of(
            normalize_name(name),
            record.distribution,
            self.preferences.priority_of(
                normalize_name(record.name), record.distribution, record.priority
            ),
        )


def _choice(cand: Candidate, reason: str) -> Choice:
    return Choice(cand.kind, cand.name, cand.record, dict(cand.parameters), reason, cand.instance)


def _unmet(record: PluginInfo, hardware: Hardware) -> str:
    from plugin_registry.requirements import unmet

    return unmet(record.requires, record.install_hint, hardware.version)


def _concrete_name(record: PluginInfo, parameters: Mapping[str, str]) -> str:
    expansions = record.expansions(aliases=False)
    for exp in expansions:
        if all(parameters.get(k) == v for k, v in exp.parameters.items()):
            return exp.name
    return expansions[0].name


def _specificity(record: PluginInfo) -> int:
    return len(record.constraints) + bool(record.strategies) + ("cpu" not in record.accelerators)


def _provided(record: PluginInfo, params: Mapping[str, Any]) -> list[str]:
    """The record's ``provides`` with the candidate's name parameters filled in."""
    out = []
    for spelled in record.provides:
        for key, value in params.items():
            spelled = spelled.replace("{" + key + "}", str(value))
        out.append(normalize_name(spelled))
    return out


def _serves(record: PluginInfo, name: str, params: Mapping[str, str], job: _Job) -> bool:
    return name == job.precision or job.precision in _provided(record, params)


def _accelerator_reason(record: PluginInfo, accel: str) -> str:
    needs = "/".join(a.upper() for a in record.accelerators)
    conditions = ", ".join(f"{k} {v}" for k, v in record.constraints.items())
    return (
        f"needs {needs}"
        + (f" with {conditions}" if conditions else "")
        + (f", found {accel.upper()}")
    )


def _constraint_reasons(record: PluginInfo, devices: Sequence[Device]) -> list[str]:
    if not record.constraints:
        return []  # and packaging.specifiers stays unimported: most of resolve()'s time
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    reasons: list[str] = []
    for key, spec in record.constraints.items():
        for device in devices:
            value = device.properties.get(key)
            if value is None:
                reasons.append(f"requires {key} {spec}, which {device.label()} does not report")
                break
            try:
                ok = SpecifierSet(spec).contains(Version(value), prereleases=True)
            except InvalidVersion:
                ok = False
            if not ok:
                reasons.append(f"requires {key} {spec}, found {value} on {device.label()}")
                break
    return reasons


def _served(record: PluginInfo, cand: Candidate) -> str:
    """The ``precision=`` value a candidate implements (its name when none)."""
    return next((p for p in _provided(record, cand.parameters) if p in PRECISIONS), cand.name)


def _precision_reasons(
    record: PluginInfo, cand: Candidate, job: _Job, made_for: tuple[str, set[str]]
) -> list[str]:
    """Why ``record`` cannot serve this job's precision; ``made_for`` are the classes and
    names the records declare for the job's strategy family."""
    reasons: list[str] = []
    served = _served(record, cand)
    dtype = PRECISION_DTYPE.get(served)  # type: ignore[call-overload]
    if dtype is not None:
        for device in job.judged_devices():
            if dtype not in device.dtypes:
                what = "the CPU" if device.accelerator == "cpu" else device.label()
                reasons.append(f"{served} needs {dtype}, which {what} does not support")
                break
    family = job.family
    if record.strategies:
        if family not in record.strategies:
            reasons.append(
                f"made for strategy {'/'.join(record.strategies)}; this job uses {job.strategy!r}"
            )
    elif family in OWN_PRECISION_FAMILIES:
        classes, names = made_for
        hint = f" ({family}-{served})" if f"{family}-{served}" in names else ""
        needs = classes or f"a precision plugin made for strategy {family!r} (none is installed)"
        reasons.append(f"strategy {job.strategy!r} needs {needs}{hint}")
    if not record.shardable and job.shards_parameters:
        reasons.append(
            f"its quantized weights cannot be sharded, and strategy {job.strategy!r} shards "
            "parameters; use 'ddp' or 'single_device'"
        )
    if family == "model_parallel" and served not in _MODEL_PARALLEL_PRECISIONS:
        reasons.append(
            f"strategy 'model_parallel' supports precision {', '.join(_MODEL_PARALLEL_PRECISIONS)}"
        )
    return reasons


def _accept_reason(cand: Candidate) -> str:
    return f"fits (priority {cand.priority}, specificity {cand.specificity})"


def resolve_locked(
    lock: Lock | str | os.PathLike[str],
    *,
    hardware: Hardware | str | os.PathLike[str] | None = None,
    registry: Registry | None = None,
    preferences: Preferences | None = None,
) -> Resolution:
    """Resolve exactly the locked plugins and settings; raise if anything differs."""
    locked = lock if isinstance(lock, Lock) else Lock.read(lock)
    for plugin in locked.plugins:
        if plugin.instance:
            raise LockMismatchError(
                f"the locked {plugin.kind} plugin is an instance of {plugin.target} that was "
                "passed to resolve(); a lock reloads named plugins only: register it "
                "(plugin_registry.register) or package it, and name it"
            )
    settings = locked.settings
    resolution = resolve(
        accelerator=settings.get("accelerator", "auto"),
        strategy=settings.get("strategy", "auto"),
        devices=settings.get("devices", "auto"),
        num_nodes=settings.get("num_nodes", 1),
        plugins=[p.spec for p in locked.plugins],
        hardware=hardware,
        registry=registry,
        preferences=preferences,
    )
    found = resolution.lock()
    # The settled precision is the plugin's name on both sides once it is named.
    diffs = [d for d in locked.differences(found) if not d.startswith("setting precision:")]
    if diffs:
        raise LockMismatchError(
            "this machine does not match the lock:\n  - "
            + "\n  - ".join(diffs)
            + "\nInstall the locked versions, or resolve again and write a new lock"
        )
    return resolution
