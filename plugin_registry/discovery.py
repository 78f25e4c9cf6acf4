"""Entry points -> records, with every plugin package isolated from the others.

Discovery is two steps, as in stevedore: :func:`scan` finds the entry points of
the ``plugin_registry`` group without importing anything, and :func:`collect`
imports one registration module and asks its hooks for records. Whatever goes
wrong in one package becomes a :class:`~plugin_registry.records.Problem` of that
package; nothing propagates to the caller.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import sys
import time
import traceback
from collections.abc import Iterable, Mapping
from typing import Any

import importlib_metadata
import pluggy

from plugin_registry import _capture, _distributions, _files, _inflight, hookspecs
from plugin_registry._text import describe, join, printable
from plugin_registry.errors import ConfigurationError
from plugin_registry.names import did_you_mean, suggestions
from plugin_registry.records import (
    KINDS,
    MAX_NAME_LENGTH,
    MAX_NAMES_PER_PACKAGE,
    MAX_PARAMETER_ITEMS_PER_PACKAGE,
    MAX_RECORD_BYTES_PER_PACKAGE,
    MAX_RECORDS_PER_PACKAGE,
    Collected,
    EntryPointRef,
    Kind,
    PluginInfo,
    Problem,
    parameter_values,
    validate_record,
)

#: Modules a registration module must not import (checked fully by the doctor).
HEAVY_MODULES = ("torch", "numpy", "lightning", "pytorch_lightning")

_REFERENCE_RE = re.compile(r"\s*[A-Za-z_][\w.]*\s*(:\s*[A-Za-z_][\w.]*\s*)?(\[.*\])?\s*\Z")


def scan(group: str = hookspecs.ENTRY_POINT_GROUP) -> list[EntryPointRef]:
    """Every entry point of ``group`` on ``sys.path``, first distribution wins.

    Distributions come from the one dist-info scanner
    (:mod:`plugin_registry._distributions`), in ``sys.path`` order and
    deduplicated by normalised name, as importlib-metadata's own
    ``entry_points()`` does. Only a package whose ``entry_points.txt`` names the
    group is parsed (by importlib-metadata's public ``PathDistribution``).
    """
    # A substring test before parsing: most distributions have no entry point
    # of ours, and parsing their entry_points.txt is most of what a scan costs.
    header = f"[{group}]"
    found: list[EntryPointRef] = []
    for dist in _distributions.first_of_each():
        try:
            found.extend(_refs_of(dist, group, header))
        except Exception:  # noqa: BLE001 - unreadable metadata of one distribution
            continue  # it cannot be a usable plugin package; the others still are
    return found


def _refs_of(
    dist: _distributions.InstalledDistribution, group: str, header: str
) -> list[EntryPointRef]:
    # Bounded, and a regular file only: a FIFO or device there never hangs a scan.
    try:
        text = _files.read_text(
            os.path.join(dist.metadata_dir, "entry_points.txt"), max_bytes=1 << 20
        )
    except OSError:
        return []
    if header not in text:
        return []
    metadata = importlib_metadata.PathDistribution(pathlib.Path(dist.metadata_dir))
    return [
        EntryPointRef(dist.name, dist.version, ep.name, ep.value, dist.metadata_dir)
        for ep in metadata.entry_points.select(group=group)
    ]


def collect(
    ref: EntryPointRef,
    manager: pluggy.PluginManager | None = None,
    marker_dir: pathlib.Path | None = None,
) -> Collected:
    """Import one registration module and gather its records, never raising.

    The module stays registered in ``manager`` (for later hooks) when it loaded.
    Whatever it raises -- any exception, ``SystemExit``, a ``KeyboardInterrupt``
    it raised itself -- becomes a Problem; only a real Ctrl-C from the user goes
    through. What it prints is captured into the result, not shown. While it runs,
    a marker in ``marker_dir`` names it, for the next run to report should it end
    the process (:mod:`plugin_registry._inflight`).
    """
    slow = (
        f"plugin-registry: still importing {ref.value.strip()!r}, the registration module of "
        f"{ref.distribution}, and asking it for records after {_capture.SLOW_SECONDS:g} s. If "
        f"it hangs, skip the package with PLUGIN_REGISTRY_BLOCK='{ref.distribution}:*' (or "
        "turn autoload off with PLUGIN_REGISTRY_DISABLE_AUTOLOAD=1)\n"
    )
    pid = os.getpid()
    marked = {
        "distribution": ref.distribution,
        "version": ref.version,
        "entry_point": ref.name,
        "value": ref.value,
    }
    with (
        _inflight.marking(marker_dir, marked),
        _capture.captured() as output,
        _capture.Interrupts() as interrupts,
        _capture.slow_warning(slow),
    ):
        try:
            collected = _collect(ref, manager, interrupts)
        finally:
            if os.getpid() != pid:
                # The plugin forked and its child came back here: it must not go on
                # as the host program (a second listing, a second --json document).
                os._exit(0)
    collected.output = output.text
    if output.lost:
        lost = " and ".join(output.lost)
        reason = (
            f"registration module {ref.value!r} closed file descriptors it did not open: "
            f"the process's {lost} had no path to reopen and now go to {os.devnull}; "
            "fix or uninstall the package"
        )
        collected.problems.append(Problem(ref.distribution, ref.name, reason))
        _capture.write_stderr(f"plugin-registry: {reason}\n")
    return collected


def ended_last_run(marker_dir: pathlib.Path | None) -> list[Problem]:
    """The packages whose registration import ended an earlier process (os._exit, a
    crash, a kill), each named on stderr now, before any plugin code runs again."""
    problems = []
    for left in _inflight.left_behind(marker_dir):
        dist, value = printable(left["distribution"]), printable(left["value"])
        reason = (
            f"an earlier listing (process {left['pid']}) ended while importing {value!r}, the "
            f"registration module of {dist} {printable(left['version'])}: it called os._exit, "
            "crashed or was killed there. If this run ends too, skip the package with "
            f"PLUGIN_REGISTRY_BLOCK='{dist}:*' (or turn autoload off with "
            "PLUGIN_REGISTRY_DISABLE_AUTOLOAD=1), and fix or uninstall it"
        )
        _capture.write_stderr(f"plugin-registry: {reason}\n")
        problems.append(
            Problem(left["distribution"], left["entry_point"], reason, severity="warning")
        )
    return problems


def _collect(
    ref: EntryPointRef, manager: pluggy.PluginManager | None, interrupts: _capture.Interrupts
) -> Collected:
    """Import, register, ask each record hook: every failure a Problem of ``ref``'s package."""
    started = time.time()
    deps: dict[str, int | None] = {}
    if ref.metadata_dir:
        ep_file = os.path.join(ref.metadata_dir, "entry_points.txt")
        deps[ep_file] = _files.mtime_ns(ep_file)
    problems: list[Problem] = []

    def problem(reason: str, exc: BaseException | None, **kw: Any) -> Problem:
        if exc is not None and interrupts.is_real(exc):
            raise exc
        p = Problem(ref.distribution, ref.name, reason, detail=_format(exc), exception=exc, **kw)
        problems.append(p)
        return p

    plugin = _import(ref, deps, problem)
    if plugin is None:
        return Collected([], problems, deps, started)
    manager = manager or new_manager()
    if not _register(ref, plugin, manager, problem):
        return Collected([], problems, deps, started)
    records = _ask_record_hooks(ref, manager, problem)
    # Remembered (and cached) so that callers of the other hooks import only
    # the packages implementing them.
    hooks = sorted(
        caller.name
        for caller in manager.get_hookcallers(plugin) or ()
        if caller.spec is not None and caller.name not in hookspecs.HOOK_FOR_KIND.values()
    )
    return Collected(_dedupe(ref, records, problem), problems, deps, started, hooks)


#: The words a misspelt entry point's problem ends with (the doctor shows them as the fix).
ENTRY_POINT_FIX = (
    "correct the entry point under [project.entry-points.plugin_registry] in the "
    "package's pyproject.toml, and reinstall it"
)


def _missing_own_module(ref: EntryPointRef, exc: BaseException) -> str:
    """Where the entry point names a module that does not exist (not a module it
    imports): say so, with the package's modules of that name's shape."""
    missing = getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None
    module = ref.value.split(":", 1)[0].strip()
    if not missing or not (module == missing or module.startswith(missing + ".")):
        return ""
    import importlib.util
    import pkgutil

    parent = missing.rpartition(".")[0]

    try:
        if parent:
            spec = importlib.util.find_spec(parent)
            path = list(spec.submodule_search_locations or []) if spec else []
            known = [m.name for m in pkgutil.iter_modules(path)]
        else:  # the modules beside the package's metadata
            where = importlib_metadata.distribution(ref.distribution).locate_file("")
            known = [m.name for m in pkgutil.iter_modules([str(where)])]
    except Exception:  # noqa: BLE001 - a broken package's parent may fail to import too
        known = []
    prefix = f"{parent}." if parent else ""
    close = suggestions(missing.rpartition(".")[2], [k for k in known if k.isidentifier()])
    hint = f". Did you mean {join([repr(prefix + c) for c in close], 'or')}?" if close else ""
    return (
        f"entry point {ref.name} = {ref.value!r} names module {missing!r}, which does not "
        f"exist ({describe(exc)}){hint or '.'} Fix: {ENTRY_POINT_FIX}"
    )


#: The heavy modules each registration module imported when it was first imported
#: in this process, by entry point value.
_HEAVY_IMPORTS: dict[str, list[str]] = {}


def _import(ref: EntryPointRef, deps: dict[str, int | None], problem: Any) -> object | None:
    """The registration module (or object) ``ref`` names; None when it cannot be imported."""
    if not _REFERENCE_RE.match(ref.value):
        problem(
            f"entry point {ref.name} = {ref.value!r} is malformed: expected "
            "'package.module' or 'package.module:object'",
            None,
        )
        return None
    before = set(sys.modules)
    try:
        plugin: object = importlib_metadata.EntryPoint(
            name=ref.name, value=ref.value, group=hookspecs.ENTRY_POINT_GROUP
        ).load()
    except BaseException as exc:  # noqa: BLE001 - a third party's import, isolated
        misspelt = _missing_own_module(ref, exc)
        problem(
            misspelt or f"entry point {ref.name} = {ref.value!r} failed to load: {describe(exc)}",
            exc,
        )
        return None
    finally:
        _track_modules(ref, before, deps)
    module_name = ref.value.split(":", 1)[0].strip()
    if module_name in before:
        # Imported earlier in this process (a second registry, a refresh): what it
        # imported then is what it imports; measured now, it would be nothing.
        heavy = _HEAVY_IMPORTS.get(ref.value, [])
    else:
        heavy = sorted(m for m in HEAVY_MODULES if m in sys.modules and m not in before)
        _HEAVY_IMPORTS[ref.value] = heavy
    if heavy:
        problem(
            f"registration module {ref.value!r} imports {', '.join(heavy)}, so every listing "
            "without a warm cache pays for it; import it inside the plugin's target instead",
            None,
            severity="warning",
        )
    return plugin


def _register(
    ref: EntryPointRef, plugin: object, manager: pluggy.PluginManager, problem: Any
) -> bool:
    """Register ``plugin`` under the entry point's key; False when pluggy refuses its hooks."""
    try:
        manager.register(plugin, name=ref.key)
    except BaseException as exc:  # noqa: BLE001 - pluggy validation of a third party's hooks
        problem(f"its hook implementations are invalid: {describe(exc)}", exc)
        return False
    for caller in manager.get_hookcallers(plugin) or ():
        if caller.spec is None:
            problem(
                f"unknown hook {caller.name!r}"
                + did_you_mean(caller.name, hookspecs.HOOK_FOR_KIND.values()),
                None,
                severity="warning",
            )
    return True


def _ask_record_hooks(
    ref: EntryPointRef, manager: pluggy.PluginManager, problem: Any
) -> list[PluginInfo]:
    """The records of each kind's hook this package implements, within the package's limits."""
    records: list[PluginInfo] = []
    budget = _Budget()
    for kind in KINDS:
        hook_name = hookspecs.HOOK_FOR_KIND[kind]
        for impl in getattr(manager.hook, hook_name).get_hookimpls():
            if impl.plugin_name != ref.key:
                continue
            records.extend(_call_hook(ref, kind, impl.function, problem, budget))
    return records


@dataclasses.dataclass
class _Budget:
    """What one package may still declare, its records together (see records.py)."""

    records: int = MAX_RECORDS_PER_PACKAGE
    names: int = MAX_NAMES_PER_PACKAGE
    values: int = MAX_PARAMETER_ITEMS_PER_PACKAGE
    size: int = MAX_RECORD_BYTES_PER_PACKAGE
    spent: bool = False

    def take(self, record: PluginInfo) -> str:
        """Count ``record`` against the budget; the limit it passes ('' when none). The
        record count is checked before a record is even validated (an endless generator)."""
        self.records -= 1
        self.names -= len(record.names())
        self.values -= parameter_values(record)
        self.size -= len(json.dumps(record.to_dict()))
        passed = ""
        if self.names < 0:
            passed = f"more than {MAX_NAMES_PER_PACKAGE} names (aliases and expansions included)"
        elif self.values < 0:
            passed = f"more than {MAX_PARAMETER_ITEMS_PER_PACKAGE} parameter values"
        elif self.size < 0:
            passed = f"records of more than {MAX_RECORD_BYTES_PER_PACKAGE // 1024} KiB as JSON"
        self.spent = bool(passed)
        return passed


def _format(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    try:
        return "".join(traceback.format_exception(exc))[-20000:]
    except BaseException:  # noqa: BLE001 - a traceback that cannot be formatted
        return describe(exc)


def new_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    return manager


def _call_hook(
    ref: EntryPointRef, kind: Kind, function: Any, problem: Any, budget: _Budget
) -> list[PluginInfo]:
    where = f"{hookspecs.HOOK_FOR_KIND[kind]}()"
    good: list[PluginInfo] = []
    if budget.spent:
        return good
    try:
        returned = function()
        if returned is None:
            return []
        if isinstance(returned, (str, bytes, Mapping)) or not isinstance(returned, Iterable):
            problem(
                f"{where} returned {type(returned).__name__}, not a list of PluginInfo",
                None,
                kind=kind,
            )
            return []
        # Bounded: a generator without end must not hang every listing.
        for item in returned:
            if budget.records <= 0:
                _over_budget(where, f"more than {MAX_RECORDS_PER_PACKAGE} records", problem, kind)
                budget.spent = True
                break
            try:
                record = validate_record(item, kind)
            except BaseException as exc:  # noqa: BLE001 - a hostile record
                budget.records -= 1
                name = getattr(item, "name", None) if isinstance(item, PluginInfo) else None
                problem(
                    f"{where} returned an invalid record: "
                    + (printable(exc) if isinstance(exc, ConfigurationError) else describe(exc)),
                    exc,
                    kind=kind,
                    names=(name,) if type(name) is str and len(name) <= MAX_NAME_LENGTH else (),
                )
                continue
            record = dataclasses.replace(record, distribution=ref.distribution, version=ref.version)
            passed = budget.take(record)  # as the cache keeps it
            if passed:
                _over_budget(where, passed, problem, kind)
                break
            good.append(record)
    except BaseException as exc:  # noqa: BLE001 - a third party's hook
        problem(f"{where} raised {describe(exc)}", exc, kind=kind)
    return good


def _over_budget(where: str, passed: str, problem: Any, kind: Kind) -> None:
    problem(
        f"{where} returned {passed} (the most one package may declare, so that it cannot "
        "slow every other lookup); this record and the rest are ignored: split the "
        "package, or declare fewer choices",
        None,
        kind=kind,
    )


def _dedupe(ref: EntryPointRef, records: list[PluginInfo], problem: Any) -> list[PluginInfo]:
    """Drop a record whose name repeats one the same package already declared."""
    owner: dict[tuple[str, str], str] = {}
    kept: list[PluginInfo] = []
    for record in records:
        names = set(record.names())
        clash = sorted(n for n in names if (record.kind, n) in owner)
        if clash:
            problem(
                f"{record.kind} record {record.name!r} reuses the name(s) {clash} of record "
                f"{owner[(record.kind, clash[0])]!r} in the same package; the later record "
                "is ignored",
                None,
                kind=record.kind,
                names=(record.name,),
            )
            continue
        for n in names:
            owner[(record.kind, n)] = record.name
        kept.append(record)
    return kept


def _track_modules(ref: EntryPointRef, before: set[str], deps: dict[str, int | None]) -> None:
    """Note the files of the registration module's own package that were imported.

    An edited registration module (an editable install under development) must
    invalidate the cached records even though no distribution changed.
    """
    module_name = ref.value.split(":", 1)[0].strip()
    top = module_name.split(".", 1)[0]
    names = {m for m in set(sys.modules) - before if m == top or m.startswith(top + ".")}
    names.add(module_name)
    for name in names:
        file = getattr(sys.modules.get(name), "__file__", None)
        if file:
            deps[file] = _files.mtime_ns(file)
