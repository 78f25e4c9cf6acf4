"""Registry: discovery, names and control, behind the module-level functions.

A name travels one way: :meth:`Registry.load` parses it (names), finds the
visible record (control, conflicts, pins), imports ``record.target`` and calls
it with the record's parameters, the parameters the name implies, and the
caller's overrides. The parts live beside it: one discovery in ``_snapshot``,
why a lookup failed in ``_lookup_failure``, importing and building in
``_loading`` (both imported only when needed: a listing needs neither).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plugin_registry import cache as cache_mod
from plugin_registry._snapshot import DiscoveryStats, Snapshot, discover
from plugin_registry.errors import (
    ConfigurationError,
    PluginNotFoundError,
    PluginUnavailableError,
    PluginWarning,
)
from plugin_registry.kinds import Kind
from plugin_registry.names import Spec, did_you_mean, normalize_kind, normalize_name, parse_spec
from plugin_registry.records import (
    ENTRY_POINT_GROUP,
    IN_PROCESS,
    KINDS,
    EntryPointRef,
    PluginInfo,
    Problem,
    validate_record,
)

if TYPE_CHECKING:
    from plugin_registry.control import Control

_warned: set[tuple[Any, ...]] = set()


class Match(tuple[PluginInfo, dict[str, str], bool, "Spec | None"]):
    """A record found for a request, and the parameters its spelling implies.

    A named tuple written out: ``typing.NamedTuple`` generates and execs its methods
    when the class is made (~0.2 ms), and this module is imported by every listing.
    """

    __slots__ = ()

    def __new__(
        cls,
        record: PluginInfo,
        parameters: dict[str, str],
        is_alias: bool,
        spec: Spec | None = None,
    ) -> Match:
        return tuple.__new__(cls, (record, parameters, is_alias, spec))

    @property
    def record(self) -> PluginInfo:
        return self[0]

    @property
    def parameters(self) -> dict[str, str]:
        return self[1]

    @property
    def is_alias(self) -> bool:
        return self[2]

    @property
    def spec(self) -> Spec | None:
        """The request as parsed (set by :meth:`Registry.find`)."""
        return self[3]

    _fields = ("record", "parameters", "is_alias", "spec")

    def _asdict(self) -> dict[str, Any]:
        return dict(zip(self._fields, self, strict=True))

    def _replace(self, **changes: Any) -> Match:
        unknown = set(changes) - set(self._fields)
        if unknown:
            raise ValueError(f"Match has no field(s) {sorted(unknown)}")
        return Match(**{**self._asdict(), **changes})

    def __repr__(self) -> str:
        return (
            f"Match(record={self[0]!r}, parameters={self[1]!r}, is_alias={self[2]!r}, "
            f"spec={self[3]!r})"
        )


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
        # No policy (no argument, no variable): no Control, and control.py is not even
        # imported (~0.2 ms of a warm listing's ~3); `control` builds the default one.
        self._control: Control | None = None
        if any(v is not None for v in (autoload, enable, allow, block, pins)) or any(
            k.startswith("PLUGIN_REGISTRY_") and k not in cache_mod.VARIABLES for k in os.environ
        ):
            from plugin_registry.control import Control

            self._control = Control.build(
                autoload=autoload, enable=enable, allow=allow, block=block, pins=pins
            )
        self.cache_enabled = cache_mod.enabled_by_env() if cache is None else cache
        self.cache_dir = Path(cache_dir) if cache_dir is not None else cache_mod.default_dir()
        self.stats = DiscoveryStats()
        self._lock = threading.RLock()
        self._state: Snapshot | None = None
        self._in_process: list[PluginInfo] = []
        # Keyed by the record itself: a record registered later under the same
        # name with another target never reaches an object registered before.
        self._objects: dict[PluginInfo, Any] = {}
        self._overrides: set[tuple[str, str]] = set()
        self._index: dict[tuple[Kind, str], list[Match]] | None = None

    @property
    def control(self) -> Control:
        """The policy this registry applies (see :mod:`plugin_registry.control`)."""
        if self._control is None:
            from plugin_registry.control import Control

            self._control = Control()
        return self._control

    # -- discovery -------------------------------------------------------------

    def refresh(self) -> None:
        """Forget what was discovered; the next call discovers again, from scratch.

        The next discovery builds a new snapshot with a new pluggy manager and
        replaces the old one whole; plugins registered in-process stay.
        """
        with self._lock:
            self._state = None
            self._index = None

    def _snapshot(self) -> Snapshot:
        state = self._state
        if state is not None:
            return state
        with self._lock:
            if self._state is None:
                self._state, self.stats = discover(
                    self.group, self._control, self.cache_dir, self.cache_enabled
                )
                self._index = None
                self._warn_problems()
            return self._state

    def _ensure(self) -> None:
        self._snapshot()

    def _warn_problems(self) -> None:
        for problem in self.problems():
            key = (problem.key, problem.severity)
            if key in _warned:
                continue
            _warned.add(key)
            # _text loads here, not at import: a warm listing with nothing to say needs none.
            from plugin_registry._text import printable

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
        if record.distribution is None or self._control is None or self.control.hides_nothing:
            return True  # registered in-process (an explicit act of the host), or no rule
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
        # The lookup index only where a name has two providers: a listing builds none.
        records = self._all_records()
        if not cache_mod.may_share_names(records):
            return []
        shared = {
            key: providers
            for key, providers in cache_mod.providers_of(records).items()
            if len(providers) > 1
        }
        if not shared:
            return []
        from plugin_registry._shared_names import problems

        return problems(
            shared,
            self._snapshot().former,
            lambda kind, name: (
                self._pinned_match(kind, name, self._build_index()[(kind, name)]) is not None
            ),
        )

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
                raise PluginNotFoundError(
                    f"plugin {str(spec)!r} is installed but hidden: {why}. Change "
                    "PLUGIN_REGISTRY_ALLOW / PLUGIN_REGISTRY_BLOCK (or the Registry's "
                    "allow/block arguments) to use it",
                    reason="blocked",
                    name=spec.name,
                    kind=spec.kind,
                    providers=sorted({m.record.qualifier for m in matches}),
                )
            from plugin_registry._lookup_failure import diagnose  # an error path

            raise diagnose(spec, index, self._all_records(), self._snapshot())
        return self._choose(spec, visible)._replace(spec=spec)

    def _choose(self, spec: Spec, visible: Sequence[Match]) -> Match:
        """The one match among ``visible``: of one kind, from one provider or a pinned one."""
        kinds = sorted({m.record.kind for m in visible}, key=KINDS.index)
        if len(kinds) > 1:
            from plugin_registry._text import join

            raise PluginNotFoundError(
                f"{spec.name!r} names plugins of several kinds; say which: "
                + join([f"'{k}/{spec.name}'" for k in kinds], "or")
                + " (or pass kind=...)",
                name=spec.name,
                providers=sorted({m.record.qualifier for m in visible}),
                suggestions=[f"{k}/{spec.name}" for k in kinds],
                reason="ambiguous",
            )
        kind_found = kinds[0]
        providers = sorted({m.record.qualifier for m in visible})
        if len(providers) > 1:
            pinned = self._pinned_match(kind_found, spec.name, visible)
            if pinned is None:
                from plugin_registry._shared_names import meant_before
                from plugin_registry._text import join

                raise PluginNotFoundError(
                    f"{kind_found} plugin {spec.name!r} is provided by "
                    f"{join(providers)}; none is chosen."
                    + meant_before(self._snapshot().former, kind_found, spec.name)
                    + " Use a qualified name ("
                    + join([f"'{p}:{spec.name}'" for p in providers], "or")
                    + f") or pin one: PLUGIN_REGISTRY_PIN={spec.name}=<distribution> or "
                    "Registry(pins={...})",
                    name=spec.name,
                    kind=kind_found,
                    providers=providers,
                    suggestions=[f"{p}:{spec.name}" for p in providers],
                    reason="conflict",
                )
            return pinned
        return visible[0]

    def get(self, name: str, kind: str | None = None) -> PluginInfo:
        """The record a name stands for; nothing is imported."""
        return self.find(name, kind).record

    def _name_visible(self, record: PluginInfo, name: str) -> bool:
        if record.distribution is None or self._control is None:
            return True
        return not self._control.hides(record.distribution, name)

    def _pinned_match(self, kind: str, name: str, matches: Sequence[Match]) -> Match | None:
        if (kind, name) in self._overrides:
            chosen: str | None = IN_PROCESS
        else:
            chosen = self._control.pinned(kind, name) if self._control is not None else None
        for m in matches:
            if m.record.qualifier == chosen:
                return m
        return None

    # -- loading ---------------------------------------------------------------

    def load(self, name: str | PluginInfo, /, kind: str | None = None, **overrides: Any) -> Any:
        """Import the plugin's target and build it; ``overrides`` win over defaults.

        ``name`` is a request (``[kind/][dist:]name``) or a record (loaded by its
        first concrete name, from its own provider).
        """
        from plugin_registry._loading import build, check_fixed

        if isinstance(name, PluginInfo):
            name = _request_for(name)
        match = self.find(name, kind)
        record = match.record
        # Messages name what the caller wrote, then the record when that differs (an
        # alias, a qualified or differently spelt name).
        same = match.spec is not None and match.spec.name == normalize_name(record.name)
        shown = repr(name) if same else f"{name!r} ({record.name!r})"
        if not record.available:
            raise PluginUnavailableError(
                f"{record.kind} plugin {shown} from {record.provider} is unavailable: "
                f"{record.unavailable_reason}"
            )
        check_fixed(record, match.parameters, overrides, lambda: self.list_plugins(record.kind))
        factory = self.load_target(record)
        return build(record, factory, {**record.parameters, **match.parameters, **overrides}, shown)

    def load_target(self, record: PluginInfo) -> Any:
        """The class or factory a record names, imported now."""
        from plugin_registry._loading import import_target

        obj = self._objects.get(record) if record.distribution is None else None
        return obj if obj is not None else import_target(record)

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
                raise ConfigurationError(
                    "register(obj) needs name=... and kind=...", subject="name"
                )
            if not callable(plugin):
                raise ConfigurationError(
                    f"register() needs a class or factory, got {plugin!r}", subject="name"
                )
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
                from plugin_registry._text import join

                raise ConfigurationError(
                    f"{record.kind} name(s) {names} already served by {join(taken)}; "
                    "pass override=True to let the in-process plugin win, or choose another name",
                    subject="name",
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


def _request_for(record: PluginInfo) -> str:
    """The request that names exactly ``record``: kind, provider and first concrete name."""
    first = record.names()[0]
    if record.distribution is None:
        return f"{record.kind}/{first}"
    return f"{record.kind}/{record.qualifier}:{first}"
