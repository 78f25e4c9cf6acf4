"""Registry: discovery, names and control, behind the module-level functions.

A name travels one way: :meth:`Registry.load` parses it (names), finds the
visible record (control, conflicts, pins), imports ``record.target`` and calls
it with the record's parameters, the parameters the name implies, and the
caller's overrides.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from plugin_registry import cache as cache_mod
from plugin_registry._lookup_failure import diagnose
from plugin_registry._text import describe, join, printable
from plugin_registry.control import Control
from plugin_registry.errors import (
    AmbiguousPluginError,
    InvalidNameError,
    ParameterConflictError,
    PluginBlockedError,
    PluginConflictError,
    PluginLoadError,
    PluginNotFoundError,
    PluginUnavailableError,
    PluginWarning,
)
from plugin_registry.kinds import Kind, base_class
from plugin_registry.names import Spec, did_you_mean, normalize_kind, normalize_name, parse_spec
from plugin_registry.records import (
    ENTRY_POINT_GROUP,
    IN_PROCESS,
    KINDS,
    Collected,
    EntryPointRef,
    PluginInfo,
    Problem,
    validate_record,
)

_warned: set[tuple[Any, ...]] = set()


class Match(NamedTuple):
    """A record found for a request, and the parameters its spelling implies."""

    record: PluginInfo
    parameters: dict[str, str]
    is_alias: bool


@dataclasses.dataclass(eq=False)
class DiscoveryStats:
    """How the last discovery went; ``plugin-registry cache info`` shows it."""

    scanned: bool = False
    collected: int = 0
    reused: int = 0
    cache_written: bool = False
    cache_file: str | None = None
    seconds: float = 0.0


class Registry:
    """Plugins found through entry points, plus those registered in-process.

    Each argument left as None is read from the environment (see
    :mod:`plugin_registry.control` and :mod:`plugin_registry.cache`), so a host
    program can keep a registry of its own with its own policy.
    """

    def __init__(
        self,
        *,
        group: str = ENTRY_POINT_GROUP,
        autoload: bool | None = None,
        enable: Iterable[str] | None = None,
        allow: Iterable[str] | None = None,
        block: Iterable[str] | None = None,
        pins: Mapping[str, str] | None = None,
        cache: bool | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.group = group
        self.control = Control.build(
            autoload=autoload, enable=enable, allow=allow, block=block, pins=pins
        )
        self.cache_enabled = cache_mod.enabled_by_env() if cache is None else cache
        self.cache_dir = Path(cache_dir) if cache_dir is not None else cache_mod.default_dir()
        self.stats = DiscoveryStats()
        self._lock = threading.RLock()
        self._state: _Snapshot | None = None
        self._in_process: list[PluginInfo] = []
        # Keyed by the record itself: a record registered later under the same
        # name with another target never reaches an object registered before.
        self._objects: dict[PluginInfo, Any] = {}
        self._overrides: set[tuple[str, str]] = set()
        self._index: dict[tuple[Kind, str], list[Match]] | None = None

    # -- discovery -------------------------------------------------------------

    def refresh(self) -> None:
        """Forget what was discovered; the next call discovers again, from scratch.

        The next discovery builds a new snapshot with a new pluggy manager and
        replaces the old one whole; plugins registered in-process stay.
        """
        with self._lock:
            self._state = None
            self._index = None

    def _snapshot(self) -> _Snapshot:
        state = self._state
        if state is not None:
            return state
        with self._lock:
            if self._state is None:
                self._state = self._discover()
                self._index = None
                self._warn_problems()
            return self._state

    def _ensure(self) -> None:
        self._snapshot()

    def _discover(self) -> _Snapshot:
        """Cache or scan, then reuse or collect each package: one new snapshot."""
        started = time.perf_counter()
        stats = DiscoveryStats()
        if "plugin_registry.requirements" in sys.modules:
            sys.modules["plugin_registry.requirements"].forget_versions()
        store = cache_mod.RecordCache(self.cache_dir, self.group) if self.cache_enabled else None
        stats.cache_file = str(store.path) if store else None
        cached = cache_mod.Cached.parse(store.read()) if store else None
        refs, paths = self._entry_points(cached, stats)
        results, skipped, manager, ended = self._results(refs, cached, stats)
        if store and (stats.scanned or stats.collected):
            store.write(cache_mod.Cached.dump(paths, refs, results))
            stats.cache_written = True
        stats.seconds = time.perf_counter() - started
        self.stats = stats
        return _Snapshot.build(refs, results, skipped, manager, ended)

    def _entry_points(
        self, cached: cache_mod.Cached | None, stats: DiscoveryStats
    ) -> tuple[list[EntryPointRef], list[list[Any]]]:
        """The entry points of the group, from the cache while no path changed, else scanned."""
        search = cache_mod.search_path()
        if cached is not None and cache_mod.paths_unchanged(cached.paths, search):
            return cached.refs, cached.paths
        from plugin_registry.discovery import scan

        paths = cache_mod.path_snapshot(search, time.time())
        stats.scanned = True
        return scan(self.group), paths

    def _results(
        self, refs: list[EntryPointRef], cached: cache_mod.Cached | None, stats: DiscoveryStats
    ) -> tuple[dict[str, Collected], dict[str, str], Any, list[Problem]]:
        """Each package's records: reused from the cache where valid, else collected;
        and the packages whose import ended an earlier run, checked before the first
        import (and only then: a warm start imports no plugin code)."""
        from plugin_registry.requirements import with_availability

        manager: Any = None
        results: dict[str, Collected] = {}
        skipped: dict[str, str] = {}
        ended: list[Problem] | None = None
        for ref in refs:
            why = self.control.loads_distribution(ref.distribution)
            if why:
                skipped[ref.key] = why
            reused = cached.reusable(ref) if cached is not None else None
            if reused is not None:
                if stats.scanned:  # what else is installed may have changed
                    reused.records = with_availability(reused.records)
                results[ref.key] = reused
                stats.reused += 1
            elif not why:
                from plugin_registry.discovery import collect, ended_last_run, new_manager

                if ended is None:
                    ended = ended_last_run(self.cache_dir)
                manager = manager or new_manager()
                collected = collect(ref, manager, self.cache_dir)
                collected.records = with_availability(collected.records)
                results[ref.key] = collected
                stats.collected += 1
        return results, skipped, manager, ended or []

    def _warn_problems(self) -> None:
        for problem in self.problems():
            key = (problem.key, problem.severity)
            if key in _warned:
                continue
            _warned.add(key)
            warnings.warn(
                f"plugin package {printable(problem.distribution or IN_PROCESS)} "
                f"(entry point {printable(repr(problem.entry_point))}): "
                f"{printable(problem.reason)}",
                PluginWarning,
                stacklevel=4,
            )

    # -- listing ---------------------------------------------------------------

    def _all_records(self) -> list[PluginInfo]:
        self._ensure()
        return [*self._snapshot().records, *self._in_process]

    def list_plugins(
        self, kind: str | None = None, *, include_hidden: bool = False
    ) -> list[PluginInfo]:
        """Every visible record (of ``kind``), ordered by kind, name, provider.

        Nothing is imported beyond registration modules on a cache miss; no
        plugin target is ever imported here.
        """
        wanted = normalize_kind(kind) if kind is not None else None
        order = {k: i for i, k in enumerate(KINDS)}
        records = [
            r
            for r in self._all_records()
            if (wanted is None or r.kind == wanted) and (include_hidden or self._visible(r))
        ]
        return sorted(
            records, key=lambda r: (order[r.kind], normalize_name(r.name), r.distribution or "")
        )

    def problems(self) -> list[Problem]:
        """Broken packages and records, then names that two providers claim."""
        return [*self._snapshot().problems, *self._conflicts()]

    def skipped(self) -> dict[str, str]:
        """Entry points not loaded (``dist:entry-point`` -> why), by the control policy."""
        return dict(self._snapshot().skipped)

    def entry_points(self) -> list[EntryPointRef]:
        """The entry points of the group found on ``sys.path``, as plain refs."""
        return list(self._snapshot().refs)

    def _visible(self, record: PluginInfo) -> bool:
        if record.distribution is None:
            return True  # registered in-process: an explicit act of the host
        return any(not self.control.hides(record.distribution, n) for n in record.names())

    def _build_index(self) -> dict[tuple[Kind, str], list[Match]]:
        if self._index is None:
            index: dict[tuple[Kind, str], list[Match]] = {}
            for record in self._all_records():
                for exp in record.expansions():
                    index.setdefault((record.kind, exp.name), []).append(
                        Match(record, exp.parameters, exp.is_alias)
                    )
            self._index = index
        return self._index

    def _conflicts(self) -> list[Problem]:
        out: list[Problem] = []
        seen: set[tuple[str, frozenset[str]]] = set()
        for (kind, name), matches in self._build_index().items():
            providers = {m.record.qualifier for m in matches}
            if len(providers) < 2 or self._pinned_match(kind, name, matches) is not None:
                continue
            key = (kind, frozenset(providers))
            if key in seen:
                continue
            seen.add(key)
            out.append(
                Problem(
                    distribution=None,
                    entry_point=f"{kind}/{name}",
                    reason=(
                        f"{kind} name {name!r} is registered by {join(sorted(providers))}; "
                        f"a bare lookup fails until one is chosen: use "
                        f"{join(sorted(f'{p}:{name}' for p in providers), 'or')}, "
                        f"or pin one with PLUGIN_REGISTRY_PIN={name}=<distribution>"
                    ),
                    severity="warning",
                    names=(name,),
                    kind=kind,
                )
            )
        return out

    # -- lookup ----------------------------------------------------------------

    def find(self, name: str, kind: str | None = None) -> Match:
        """The one visible record a request names, or an error saying why not."""
        spec = parse_spec(name, kind)
        index = self._build_index()
        matches = [
            m for k in KINDS if spec.kind in (None, k) for m in index.get((k, spec.name), [])
        ]
        if spec.distribution is not None:
            matches = [m for m in matches if m.record.qualifier == spec.distribution]
        visible = [m for m in matches if self._name_visible(m.record, spec.name)]
        if not visible:
            if matches:
                why = self.control.hides(matches[0].record.distribution, spec.name)
                raise PluginBlockedError(
                    f"plugin {str(spec)!r} is installed but hidden: {why}. Change "
                    "PLUGIN_REGISTRY_ALLOW / PLUGIN_REGISTRY_BLOCK (or the Registry's "
                    "allow/block arguments) to use it"
                )
            raise diagnose(spec, index, self._all_records(), self._snapshot())
        return self._choose(spec, visible)

    def _choose(self, spec: Spec, visible: Sequence[Match]) -> Match:
        """The one match among ``visible``: of one kind, from one provider or a pinned one."""
        kinds = sorted({m.record.kind for m in visible}, key=KINDS.index)
        if len(kinds) > 1:
            raise AmbiguousPluginError(
                f"{spec.name!r} names plugins of several kinds; say which: "
                + join([f"'{k}/{spec.name}'" for k in kinds], "or")
                + " (or pass kind=...)",
                name=spec.name,
                providers=sorted({m.record.qualifier for m in visible}),
                suggestions=[f"{k}/{spec.name}" for k in kinds],
            )
        kind_found = kinds[0]
        providers = sorted({m.record.qualifier for m in visible})
        if len(providers) > 1:
            pinned = self._pinned_match(kind_found, spec.name, visible)
            if pinned is None:
                raise PluginConflictError(
                    f"{kind_found} plugin {spec.name!r} is provided by "
                    f"{join(providers)}; none is chosen. Use a qualified name ("
                    + join([f"'{p}:{spec.name}'" for p in providers], "or")
                    + f") or pin one: PLUGIN_REGISTRY_PIN={spec.name}=<distribution> or "
                    "Registry(pins={...})",
                    name=spec.name,
                    kind=kind_found,
                    providers=providers,
                    suggestions=[f"{p}:{spec.name}" for p in providers],
                )
            return pinned
        return visible[0]

    def get(self, name: str, kind: str | None = None) -> PluginInfo:
        """The record a name stands for; nothing is imported."""
        return self.find(name, kind).record

    def _name_visible(self, record: PluginInfo, name: str) -> bool:
        return record.distribution is None or not self.control.hides(record.distribution, name)

    def _pinned_match(self, kind: str, name: str, matches: Sequence[Match]) -> Match | None:
        if (kind, name) in self._overrides:
            chosen: str | None = IN_PROCESS
        else:
            chosen = self.control.pinned(kind, name)
        for m in matches:
            if m.record.qualifier == chosen:
                return m
        return None

    # -- loading ---------------------------------------------------------------

    def _check_fixed(
        self,
        record: PluginInfo,
        asked: str,
        from_name: Mapping[str, str],
        overrides: Mapping[str, Any],
    ) -> None:
        """An override may not contradict what the name says: a parameter the name
        fills (``bitsandbytes-{mode}``), or a default whose value is the name itself or
        one it provides (``bf16-mixed`` with ``precision="bf16-mixed"``)."""
        said = {normalize_name(asked), *map(normalize_name, record.provides)}
        fixed = dict(from_name)
        for key, value in record.parameters.items():
            if isinstance(value, str) and normalize_name(value) in said:
                fixed.setdefault(key, value)
        for key, value in overrides.items():
            if key not in fixed or str(value) == str(fixed[key]):
                continue
            wanted = {**from_name, key: str(value)}
            instead = next(
                (e.name for e in record.expansions(aliases=False) if dict(e.parameters) == wanted),
                None,
            )
            if instead is None:
                instead = next(
                    (
                        r.name
                        for r in self.list_plugins(record.kind)
                        if normalize_name(r.name) == normalize_name(str(value))
                    ),
                    None,
                )
            raise ParameterConflictError(
                f"{key}={value!r} contradicts the name {asked!r}, which means "
                f"{key}={fixed[key]!r}"
                + (f"; load {instead!r} instead" if instead else "; drop the override")
            )

    def load(self, name: str | PluginInfo, /, kind: str | None = None, **overrides: Any) -> Any:
        """Import the plugin's target and build it; ``overrides`` win over defaults.

        ``name`` is a request (``[kind/][dist:]name``) or a record (loaded by its
        first concrete name, from its own provider).
        """
        if isinstance(name, PluginInfo):
            name = _request_for(name)
        match = self.find(name, kind)
        record = match.record
        asked = _concrete(record, match.parameters)
        # Messages name what the caller wrote, then the record when that differs (an
        # alias, a qualified or differently spelt name).
        same = parse_spec(name, kind).name == normalize_name(record.name)
        shown = repr(name) if same else f"{name!r} ({record.name!r})"
        if not record.available:
            raise PluginUnavailableError(
                f"{record.kind} plugin {shown} from {record.provider} is unavailable: "
                f"{record.unavailable_reason}"
            )
        self._check_fixed(record, asked, match.parameters, overrides)
        factory = self.load_target(record)
        params = {**record.parameters, **match.parameters, **overrides}
        _check_parameters(record, factory, params)
        try:
            instance = factory(**params)
        except Exception as exc:
            raise PluginLoadError(
                f"building {record.kind} plugin {shown} ({record.target}) from "
                f"{record.provider} with {printable(repr(params))} failed: {describe(exc)}",
                stage="build",
            ) from exc
        base = base_class(record.kind)
        if base is not None and not isinstance(instance, base):
            raise PluginLoadError(
                f"{record.kind} plugin {record.name!r} from {record.provider}: {record.target} "
                f"built a {type(instance).__name__}, which is not a "
                f"{base.__module__}.{base.__qualname__}",
                stage="build",
            )
        return instance

    def load_target(self, record: PluginInfo) -> Any:
        """The class or factory a record names, imported now."""
        obj = self._objects.get(record) if record.distribution is None else None
        if obj is not None:
            return obj
        module_name, _, attr = record.target.partition(":")
        whose = f"the target of {record.kind} plugin {record.name!r} from {record.provider}"
        try:
            obj = importlib.import_module(module_name)
        except Exception as exc:
            raise PluginLoadError(
                f"cannot import {record.target!r}, {whose}: {_import_failure(module_name, exc)}"
            ) from exc
        where = module_name
        for part in attr.split("."):
            try:
                obj = getattr(obj, part)
            except Exception as exc:
                public: list[str] = []
                with contextlib.suppress(Exception):  # a module's own __dir__ may fail too
                    public = [n for n in dir(obj) if not n.startswith("_")]
                raise PluginLoadError(
                    f"cannot import {record.target!r}, {whose}: {where} has no attribute "
                    f"{part!r}{did_you_mean(part, public) or '.'} The record's target is "
                    f"misspelt: correct it in {record.distribution or 'its'} registration"
                ) from exc
            where = f"{where}.{part}"
        if not callable(obj):
            raise PluginLoadError(
                f"target {record.target!r} of plugin {record.name!r} is not callable"
            )
        return obj

    def load_plugins(self, plugins: Iterable[Any]) -> list[Any]:
        """Build each plugin of a ``plugins=[...]`` argument.

        Strings are requests (``[kind/][dist:]name``); a record is loaded by its
        first concrete name (a parametrised record by its first choice); anything
        else (an instance) is passed through unchanged.
        """
        built: list[Any] = []
        for item in plugins:
            if isinstance(item, (str, PluginInfo)):
                built.append(self.load(item))
            else:
                built.append(item)
        return built

    # -- in-process plugins ----------------------------------------------------

    def register(
        self,
        plugin: Any,
        /,
        *,
        name: str | None = None,
        kind: str | None = None,
        override: bool = False,
        **fields: Any,
    ) -> PluginInfo:
        """Add a plugin that is not packaged (a notebook, a test).

        ``plugin`` is a :class:`PluginInfo` or the class or factory itself, then
        with ``name`` and ``kind`` (and any other PluginInfo field). A name an
        installed package already serves is an error unless ``override=True``,
        which makes the in-process plugin win.
        """
        if isinstance(plugin, PluginInfo):
            record = validate_record(plugin, plugin.kind)
            obj = None
        else:
            if name is None or kind is None:
                raise InvalidNameError("register(obj) needs name=... and kind=...")
            if not callable(plugin):
                raise InvalidNameError(f"register() needs a class or factory, got {plugin!r}")
            record = PluginInfo(
                name=name,
                kind=normalize_kind(kind),
                target=f"{plugin.__module__}:{plugin.__qualname__}",
                **fields,
            )
            record = validate_record(record, record.kind, check_target=False)
            obj = plugin
        record = dataclasses.replace(record, distribution=None, version=None)
        from plugin_registry.requirements import with_availability

        record = with_availability([record])[0]
        names = record.names()
        with self._lock:
            index = self._build_index()
            taken = sorted(
                {m.record.qualified_name for n in names for m in index.get((record.kind, n), [])}
            )
            if taken and not override:
                raise PluginConflictError(
                    f"{record.kind} name(s) {names} already served by {join(taken)}; "
                    "pass override=True to let the in-process plugin win, or choose another name",
                    name=names[0],
                    kind=record.kind,
                    providers=taken,
                )
            for old in self._in_process:
                if old.kind == record.kind and set(old.names()) & set(names):
                    self._forget(old)
            self._in_process.append(record)
            if obj is not None:
                self._objects[record] = obj
            if override:
                self._overrides.update((record.kind, n) for n in names)
            self._index = None
        return record

    def unregister(self, name: str, kind: str) -> PluginInfo:
        """Remove an in-process plugin, its object and its override; return its record.

        The exact inverse of :meth:`register`: afterwards the name resolves as it
        did before. A name no in-process plugin has is a PluginNotFoundError.
        """
        kind_n = normalize_kind(kind)
        wanted = normalize_name(name)
        with self._lock:
            found = [r for r in self._in_process if r.kind == kind_n and wanted in r.names()]
            if not found:
                raise PluginNotFoundError(
                    f"no in-process {kind_n} plugin named {name!r} to unregister"
                    + (
                        did_you_mean(wanted, [n for r in self._in_process for n in r.names()])
                        or "; only plugins added with register() can be unregistered"
                    ),
                    name=wanted,
                    kind=kind_n,
                )
            for record in found:
                self._forget(record)
            self._index = None
        return found[0]

    def _forget(self, record: PluginInfo) -> None:
        self._in_process = [r for r in self._in_process if r is not record]
        self._objects.pop(record, None)
        for n in record.names():
            self._overrides.discard((record.kind, n))

    def implementers(self, hook: str) -> list[EntryPointRef]:
        """The loadable entry points whose registration module implements ``hook``.

        Known from discovery (and its cache), without importing anything.
        """
        state = self._snapshot()
        return [ref for ref in state.refs if hook in state.hooks.get(ref.key, ())]

    def plugin_manager(self, refs: Iterable[EntryPointRef] | None = None) -> Any:
        """The pluggy manager with the registration modules of ``refs`` registered.

        For hooks beyond the record hooks; imports those modules (every loadable
        one when ``refs`` is None). The manager belongs to the current snapshot:
        :meth:`refresh` starts a new one.
        """
        from plugin_registry.discovery import collect, new_manager

        state = self._snapshot()
        with self._lock:
            if state.manager is None:
                state.manager = new_manager()
            manager = state.manager
            registered = {manager.get_name(p) for p in manager.get_plugins()}
            for ref in state.refs if refs is None else refs:
                if ref.key not in state.skipped and ref.key not in registered:
                    collect(ref, manager, self.cache_dir)
            return manager

    def output(self) -> dict[str, str]:
        """What each registration module wrote to stdout/stderr while it was collected."""
        return dict(self._snapshot().output)


@dataclasses.dataclass(eq=False)
class _Snapshot:
    """One discovery, whole: :meth:`Registry.refresh` replaces it, never edits it."""

    @classmethod
    def build(
        cls,
        refs: list[EntryPointRef],
        results: dict[str, Collected],
        skipped: dict[str, str],
        manager: Any,
        ended: list[Problem],
    ) -> _Snapshot:
        loaded = [results[ref.key] for ref in refs if ref.key not in skipped]
        return cls(
            refs=tuple(refs),
            skipped=skipped,
            hooks={
                ref.key: tuple(results[ref.key].hooks) for ref in refs if ref.key not in skipped
            },
            records=tuple(r for c in loaded for r in c.records),
            problems=(*ended, *(p for c in loaded for p in c.problems)),
            output={
                ref.key: results[ref.key].output
                for ref in refs
                if ref.key not in skipped and results[ref.key].output
            },
            withheld=tuple(
                r
                for ref in refs
                if ref.key in skipped and ref.key in results
                for r in results[ref.key].records
            ),
            manager=manager,
        )

    refs: tuple[EntryPointRef, ...]
    skipped: dict[str, str]
    hooks: dict[str, tuple[str, ...]]
    records: tuple[PluginInfo, ...]
    problems: tuple[Problem, ...]
    output: dict[str, str]
    #: Records of packages the policy keeps out, where the cache knows them.
    withheld: tuple[PluginInfo, ...] = ()
    manager: Any = None


def _request_for(record: PluginInfo) -> str:
    """The request that names exactly ``record``: kind, provider and first concrete name."""
    first = record.names()[0]
    if record.distribution is None:
        return f"{record.kind}/{first}"
    return f"{record.kind}/{record.qualifier}:{first}"


def _import_failure(module_name: str, exc: Exception) -> str:
    """Why ``import module_name`` failed, and the way out.

    A module of the target's own package that does not exist is a misspelt
    target (suggest the package's real modules); a missing other module is a
    missing dependency; anything else is the module failing as it imports.
    """
    missing = getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None
    if missing and (module_name == missing or module_name.startswith(missing + ".")):
        parent, _, leaf = missing.rpartition(".")
        siblings: list[str] = []
        if parent:
            import pkgutil

            with contextlib.suppress(Exception):
                package = importlib.import_module(parent)
                siblings = [m.name for m in pkgutil.iter_modules(getattr(package, "__path__", []))]
        hint = did_you_mean(leaf, siblings) if siblings else ""
        return (
            f"module {missing!r} does not exist{hint or '.'} The record's target is misspelt, "
            "or the package is installed incompletely: correct the target, or reinstall it"
        )
    if missing:
        return (
            f"it imports {missing!r}, which is not installed: install it (and declare it in "
            "the record's requires)"
        )
    return f"{describe(exc)}. Importing the module failed: reinstall the providing package"


def _concrete(record: PluginInfo, parameters: Mapping[str, str]) -> str:
    """The concrete name of ``record`` that ``parameters`` (from the request) select."""
    for exp in record.expansions(aliases=False):
        if dict(exp.parameters) == dict(parameters):
            return exp.name
    return record.name


def _check_parameters(record: PluginInfo, factory: Any, params: Mapping[str, Any]) -> None:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return
    accepted = signature.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted):
        return
    names = [p.name for p in accepted if p.kind not in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY)]
    unknown = [k for k in params if k not in names]
    if unknown:
        raise PluginLoadError(
            f"{record.kind} plugin {record.name!r} takes no parameter "
            + join([repr(k) for k in unknown], "or")
            + (did_you_mean(unknown[0], names) or ".")
            + f" It accepts: {', '.join(names) or 'nothing'}",
            stage="parameters",
        )
