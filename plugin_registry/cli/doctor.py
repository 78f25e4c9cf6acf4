"""``plugin-registry doctor``: import everything, report each problem and its fix.

Unlike listing, the doctor imports every registration module (each in a fresh
interpreter, to time it and see what it drags in) and every plugin target.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Any, Literal

from plugin_registry.discovery import ENTRY_POINT_FIX, HEAVY_MODULES
from plugin_registry.errors import PluginLoadError, PluginNotFoundError
from plugin_registry.names import normalize_distribution
from plugin_registry.records import PluginInfo
from plugin_registry.registry import Registry

_PROBE = r"""
import importlib, json, sys, time
spec = json.loads(sys.argv[1])
sys.path[:] = spec["path"]
before = set(sys.modules)
t0 = time.perf_counter()
error = None
try:
    module_name, _, attr = spec["value"].partition(":")
    obj = importlib.import_module(module_name.strip())
    for part in filter(None, attr.strip().split(".")):
        obj = getattr(obj, part)
except BaseException as exc:
    error = f"{type(exc).__name__}: {exc}"
seconds = time.perf_counter() - t0
new = set(sys.modules) - before
heavy = sorted(m for m in spec["watch"] if m in new)
sys.stdout.flush()
sys.__stdout__.write("\n@@plugin-registry-probe@@" + json.dumps(
    {"seconds": seconds, "heavy": heavy, "error": error}) + "\n")
"""


#: How long the doctor waits for one registration module to import.
PROBE_SECONDS = 120


@dataclasses.dataclass
class Finding:
    severity: Literal["error", "warning", "info"]
    subject: str
    message: str
    fix: str = ""


@dataclasses.dataclass
class Report:
    findings: list[Finding]
    import_times: dict[str, float]

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "findings": [dataclasses.asdict(f) for f in self.findings],
            "import_times": self.import_times,
        }


def _import_names(distributions: Iterable[str]) -> set[str]:
    """Top-level modules that the named distributions install."""
    import importlib_metadata

    wanted = {normalize_distribution(d) for d in distributions}
    if not wanted:
        return set()
    names: set[str] = set()
    for dist in importlib_metadata.distributions():
        # Not packages_distributions(): one metadata-less dist-info or egg-info on the
        # path (an unpacked sdist's, in the working directory) made it raise.
        try:
            name = dist.metadata["Name"]
        except OSError:
            continue
        if not name or normalize_distribution(name) not in wanted:
            continue
        declared = (dist.read_text("top_level.txt") or "").split()
        inferred = set()
        for file in dist.files or ():
            path = PurePosixPath(str(file))
            if path.suffix == ".py":
                inferred.add(path.parts[0] if len(path.parts) > 1 else path.stem)
        names.update(declared or inferred)
    return names


def probe_registration(value: str, watch: Iterable[str]) -> dict[str, Any]:
    """Import one registration module in a fresh interpreter; time and watch it."""
    spec = json.dumps({"path": sys.path, "value": value, "watch": sorted(set(watch))})
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE, spec],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=PROBE_SECONDS,
        )
    except subprocess.TimeoutExpired:
        return {
            "seconds": float(PROBE_SECONDS),
            "heavy": [],
            "error": f"importing it did not finish in {PROBE_SECONDS} s",
        }
    marker = "@@plugin-registry-probe@@"
    if proc.returncode != 0 or marker not in proc.stdout:
        return {"seconds": 0.0, "heavy": [], "error": proc.stderr.strip()[-500:] or "no output"}
    result: dict[str, Any] = json.loads(proc.stdout.rsplit(marker, 1)[1].strip().splitlines()[0])
    return result


#: The distribution of the built-in plugins: a library they need being absent is a
#: normal state of a fresh install (a note), not a fault (a warning).
BUILTIN_DISTRIBUTION = "plugin-registry"


def run(registry: Registry, packages: Iterable[str] = ()) -> Report:
    """Every check, in the order the report shows them; only ``packages`` when given."""
    wanted = _wanted(registry, packages)
    records = [
        r
        for r in registry.list_plugins(include_hidden=True)
        if wanted is None or _dist(r.distribution) in wanted
    ]
    probed, times = _registration_findings(registry, records, wanted)
    findings = [
        *_problem_findings(registry),
        *probed,
        *_output_findings(registry),
        *_target_findings(registry, records),
        *_shadowed_distributions(registry),
    ]
    if wanted is not None:
        findings = [f for f in findings if _concerns(f, wanted)]
    return Report(findings, times)


def _concerns(finding: Finding, wanted: set[str]) -> bool:
    """Whether a finding is about one of the ``wanted`` packages (a name conflict is
    about each package that claims the name)."""
    subject = finding.subject.split("/")[-1].split(":")[0]
    if subject == "registry":
        return any(re.search(rf"\b{re.escape(w)}\b", finding.message) for w in wanted)
    return _dist(subject) in wanted


def _dist(name: str | None) -> str:
    return normalize_distribution(name) if name else ""


def _wanted(registry: Registry, packages: Iterable[str]) -> set[str] | None:
    """The normalised names asked for (None: all); PluginNotFoundError for one not there."""
    asked = [p for p in packages if p.strip()]
    if not asked:
        return None
    known = {_dist(ref.distribution) for ref in registry.entry_points()}
    for package in asked:
        if _dist(package) not in known:
            from plugin_registry.names import meant, suggestions

            close = suggestions(package, sorted(known))
            raise PluginNotFoundError(
                f"no installed plugin package is named {package!r}"
                + meant(close, "; did you mean", otherwise=".")
                + " 'plugin-registry list' shows each plugin's package",
                name=package,
                suggestions=close,
            )
    return {_dist(p) for p in asked}


def _problem_findings(registry: Registry) -> list[Finding]:
    """What discovery met: broken packages and name conflicts."""
    findings = []
    for problem in registry.problems():
        message, own_fix = problem.reason, ""
        if f" Fix: {ENTRY_POINT_FIX}" in message:  # a misspelt entry point: its own way out
            message, _, own_fix = message.partition(" Fix: ")
        generic = "fix or uninstall the package: pip uninstall " + (
            problem.distribution or "<package>"
        )
        findings.append(
            Finding(
                problem.severity,
                f"{problem.distribution or 'registry'}:{problem.entry_point}",
                message,
                own_fix or (generic if problem.severity == "error" else ""),
            )
        )
    return findings


def _registration_findings(
    registry: Registry, records: list[PluginInfo], wanted: set[str] | None = None
) -> tuple[list[Finding], dict[str, float]]:
    """Each registration module imported in a fresh interpreter: its time and heavy imports."""
    from packaging.requirements import InvalidRequirement, Requirement

    findings: list[Finding] = []
    times: dict[str, float] = {}
    skipped = registry.skipped()
    for ref in registry.entry_points():
        if wanted is not None and _dist(ref.distribution) not in wanted:
            continue
        if ref.key in skipped:
            findings.append(Finding("info", ref.key, f"not loaded: {skipped[ref.key]}"))
            continue
        own = [r for r in records if r.distribution == ref.distribution]
        req_dists = set()
        for r in own:
            for text in r.requires:
                with contextlib.suppress(InvalidRequirement):
                    req_dists.add(Requirement(text).name)
        watch = set(HEAVY_MODULES) | _import_names(req_dists)
        watch |= {r.target.partition(":")[0] for r in own}
        watch.discard(ref.value.partition(":")[0].strip())
        result = probe_registration(ref.value, watch)
        times[ref.key] = result["seconds"]
        if result["error"]:
            continue  # already reported as a discovery problem
        if result["heavy"]:
            findings.append(
                Finding(
                    "error",
                    ref.key,
                    f"registration module {ref.value!r} imports {', '.join(result['heavy'])} "
                    f"({result['seconds'] * 1000:.0f} ms); listing plugins pays for it",
                    "move those imports into the plugin targets, or inside functions",
                )
            )
    return findings, times


def _output_findings(registry: Registry) -> list[Finding]:
    """Registration modules that print (captured by discovery, never shown by listing)."""
    return [
        Finding(
            "warning",
            key,
            "its registration module writes to stdout/stderr when imported (captured, "
            f"not shown): {text.strip()[:300]}",
            "print nothing at import time; use logging, or print inside the plugin",
        )
        for key, text in sorted(registry.output().items())
    ]


def _target_findings(registry: Registry, records: list[PluginInfo]) -> list[Finding]:
    """Each visible, available plugin's target imported and checked against its base class."""
    from plugin_registry.kinds import base_class

    findings: list[Finding] = []
    for record in records:
        subject = f"{record.kind}/{record.qualified_name}"
        hidden = _hidden_reason(registry, record)
        if hidden:
            # A hidden plugin's code is not imported, by the doctor either.
            findings.append(Finding("info", subject, f"not checked: {hidden}"))
            continue
        if not record.available:
            from plugin_registry.cli.listing import requirements_of

            unmet = requirements_of(record)
            optional = _dist(record.distribution) == BUILTIN_DISTRIBUTION and all(
                reason.endswith(" is not installed") for reason in unmet.reasons
            )
            findings.append(
                Finding(
                    "info" if optional else "warning",
                    subject,
                    f"unavailable: {'; '.join(unmet.reasons)}",
                    unmet.fix,
                )
            )
            continue
        try:
            target = registry.load_target(record)
        except PluginLoadError as exc:
            # The message ends with its way out (misspelt target, missing dependency, ...).
            message, _, fix = str(exc).rpartition(": ")
            findings.append(Finding("error", subject, message or fix, fix if message else ""))
            continue
        base = base_class(record.kind)
        if base is not None and isinstance(target, type) and not issubclass(target, base):
            findings.append(
                Finding(
                    "error",
                    subject,
                    f"target {record.target} is not a subclass of {base.__qualname__}",
                    f"derive it from {base.__module__}.{base.__qualname__}",
                )
            )
    return findings


def _hidden_reason(registry: Registry, record: PluginInfo) -> str:
    if record.distribution is None:
        return ""
    reasons = [registry.control.hides(record.distribution, n) for n in record.names()]
    return reasons[0] if all(reasons) else ""


def _shadowed_distributions(registry: Registry) -> list[Finding]:
    """Plugin distributions installed twice on sys.path: the first one wins."""
    from plugin_registry._distributions import installed

    plugin_dists = {ref.distribution for ref in registry.entry_points()}
    locations: dict[str, list[str]] = {}
    for dist in installed():
        if dist.name in plugin_dists:
            locations.setdefault(dist.name, []).append(f"{dist.version} at {dist.metadata_dir}")
    return [
        Finding(
            "warning",
            name,
            f"installed {len(where)} times; {where[0]} shadows " + ", ".join(where[1:]),
            "uninstall the copy you do not use",
        )
        for name, where in locations.items()
        if len(where) > 1
    ]
