"""Rule 2 of :mod:`~plugin_registry.resolver.choosing`: why a candidate cannot serve a job.

A :class:`Judge` looks at one candidate and one settled
:class:`~plugin_registry.resolver.settled_job.Job` and returns the candidate accepted, or
rejected with every reason that applies (not just the first: the explanation
shows them all).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from plugin_registry.kinds.checkpoint_io import SHARDED_CHECKPOINT
from plugin_registry.kinds.precision import PRECISION_DTYPE, PRECISIONS
from plugin_registry.machine import Device, Hardware
from plugin_registry.names import normalize_name
from plugin_registry.records import PluginInfo
from plugin_registry.resolver.resolution import Candidate
from plugin_registry.resolver.settings import OWN_PRECISION_FAMILIES
from plugin_registry.resolver.settled_job import Job

if TYPE_CHECKING:
    from plugin_registry.requirements import Unmet

# Lightning's ModelParallelStrategy accepts only these.
_MODEL_PARALLEL_PRECISIONS = ("32-true", "bf16-mixed", "bf16-true", "16-true")


class Judge:
    """Judges candidates against the installed ``records``.

    ``preferred(kind, name)`` is the distribution the user wants ``name``
    from (a preference or a pin), or None.
    """

    def __init__(
        self,
        records: Sequence[PluginInfo],
        preferred: Callable[[str, str], str | None],
        planned: Hardware | None = None,
    ) -> None:
        """``planned`` is the hardware record whose libraries are judged (None: this
        machine's installed packages)."""
        self.records = records
        self.preferred = preferred
        self.planned = planned

    def verdict(self, cand: Candidate, job: Job) -> Candidate:
        record = cand.record
        assert record is not None
        reasons: list[str] = []
        if not record.available:
            # An explicit request fails with the whole fix; a ranked list says it short
            # (`plugin-registry show NAME` has the install command).
            reasons.append(record.unavailable_reason if cand.explicit else self._missing(record))
        if job.accelerator not in record.accelerators and "any" not in record.accelerators:
            reasons.append(_accelerator_reason(record, job.accelerator))
        else:
            reasons.extend(_constraint_reasons(record, job.judged_devices()))
        if cand.kind == "precision":
            reasons.extend(_precision_reasons(record, cand, job, self._made_for(job.family)))
        if cand.kind == "cluster_environment":
            reasons.extend(self._environment_reasons(record, job))
        sharded = cand.kind == "checkpoint_io" and SHARDED_CHECKPOINT in record.provides
        if sharded and not job.shards_parameters and not cand.explicit:
            reasons.append(
                f"writes sharded checkpoints, chosen when the strategy shards parameters "
                f"(fsdp, deepspeed_stage_3); {job.strategy!r} does not (name it to use it)"
            )
        preferred = self.preferred(cand.kind, cand.name)
        if preferred and not cand.explicit and record.distribution not in ("", None, preferred):
            reasons.append(f"{cand.name!r} is taken from {preferred} (preferred provider)")
        if not reasons:
            if sharded and not cand.explicit:
                # Ranked above the single-file IOs, which would gather every shard on one rank.
                cand = dataclasses.replace(cand, specificity=cand.specificity + 1)
                reasons.append(
                    f"strategy {job.strategy!r} shards parameters: every rank writes its own "
                    f"shards, nothing is gathered on one rank; {_accept_reason(cand)}"
                )
            else:
                reasons.append("explicitly requested" if cand.explicit else _accept_reason(cand))
            return dataclasses.replace(cand, accepted=True, reasons=tuple(reasons))
        return dataclasses.replace(cand, accepted=False, reasons=tuple(reasons))

    def _unmet(self, record: PluginInfo) -> Unmet:
        return unmet_on(record, self.planned)

    def _missing(self, record: PluginInfo) -> str:
        unmet = self._unmet(record)
        return ", ".join(unmet.short) if unmet.short else record.unavailable_reason

    def fix(self, record: PluginInfo) -> str:
        """The install command for what ``record`` lacks ('' when it lacks nothing)."""
        return "" if record.available else self._unmet(record).fix

    def _environment_reasons(self, record: PluginInfo, job: Job) -> list[str]:
        if job.family != "xla" or "xla" in record.accelerators:
            return []
        runtime = self.classes("cluster_environment", lambda r: "xla" in r.accelerators)
        return [
            f"strategy {job.strategy!r} takes its ranks from the XLA runtime"
            + (f" ({runtime})" if runtime else "")
        ]

    def _made_for(self, family: str) -> tuple[str, set[str]]:
        """The plugin classes and names made for a strategy family, from the records."""
        made = [r for r in self.records if r.kind == "precision" and family in r.strategies]
        classes = self.classes("precision", lambda r: family in r.strategies)
        return classes, {n for r in made for n in r.names()}

    def classes(self, kind: str, wanted: Callable[[PluginInfo], bool]) -> str:
        """``A or B``: the target classes of the records of ``kind`` that ``wanted`` picks."""
        names = sorted(
            {r.target.rpartition(":")[2].rpartition(".")[2]
             for r in self.records if r.kind == kind and wanted(r)}
        )  # fmt: skip
        return " or ".join(names)


def unmet_on(record: PluginInfo, hardware: Hardware | None) -> Unmet:
    """What ``record`` lacks on ``hardware`` (a record of another machine), or here (None)."""
    from plugin_registry.requirements import check, installed_version

    if hardware is None:
        return check(record.requires, record.install_hint, installed_version)
    return check(record.requires, record.install_hint, hardware.version, hardware.records)


def specificity(record: PluginInfo) -> int:
    """Rank among equal priorities: constraints checked, a strategy family, no CPU."""
    return len(record.constraints) + bool(record.strategies) + ("cpu" not in record.accelerators)


def serves(record: PluginInfo, name: str, params: Mapping[str, str], job: Job) -> bool:
    """Whether the precision plugin ``name`` is, or provides, the job's precision."""
    return name == job.precision or job.precision in _provided(record, params)


def _provided(record: PluginInfo, params: Mapping[str, Any]) -> list[str]:
    """The record's ``provides`` with the candidate's name parameters filled in."""
    out = []
    for spelled in record.provides:
        for key, value in params.items():
            spelled = spelled.replace("{" + key + "}", str(value))
        out.append(normalize_name(spelled))
    return out


def _accelerator_reason(record: PluginInfo, accel: str) -> str:
    needs = "/".join(a.upper() for a in record.accelerators)
    conditions = ", ".join(f"{k} {v}" for k, v in record.constraints.items())
    with_ = f" with {conditions}" if conditions else ""
    return f"needs {needs}{with_}, found {accel.upper()}"


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
    record: PluginInfo, cand: Candidate, job: Job, made_for: tuple[str, set[str]]
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
