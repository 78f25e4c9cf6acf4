"""One discovery of the installed plugin packages, whole.

:func:`discover` reads the record cache, or scans the entry points where a path
changed; reuses each package's cached records where its files did not change,
else collects them (importing its registration module); and writes the cache
back. The :class:`Snapshot` it returns is never edited: :meth:`Registry.refresh
<plugin_registry.registry.Registry.refresh>` replaces it whole.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plugin_registry import cache as cache_mod
from plugin_registry.records import Collected, EntryPointRef, PluginInfo, Problem

if TYPE_CHECKING:
    from plugin_registry.control import Control

# Plain classes, not dataclasses: creating a dataclass costs ~0.3 ms (its methods are
# generated and exec'd), and these two are created on every warm start, whose whole
# budget is a few milliseconds (benchmarks/bench_listing.py).


class DiscoveryStats:
    """How the last discovery went; ``plugin-registry cache info`` shows it."""

    def __init__(self) -> None:
        self.scanned = False
        self.collected = 0
        self.reused = 0
        self.cache_written = False
        self.cache_file: str | None = None
        self.seconds = 0.0

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"DiscoveryStats({fields})"


class Snapshot:
    """One discovery, whole: :meth:`Registry.refresh` replaces it, never edits it."""

    def __init__(
        self,
        *,
        refs: tuple[EntryPointRef, ...],
        skipped: dict[str, str],
        hooks: dict[str, tuple[str, ...]],
        records: tuple[PluginInfo, ...],
        problems: tuple[Problem, ...],
        output: dict[str, str],
        withheld: tuple[PluginInfo, ...] = (),
        manager: Any = None,
        former: dict[str, str] | None = None,
    ) -> None:
        self.refs = refs
        self.skipped = skipped
        self.hooks = hooks
        self.records = records
        self.problems = problems
        self.output = output
        #: Records of packages the policy keeps out, where the cache knows them.
        self.withheld = withheld
        #: The pluggy manager, made when a registration module is first imported.
        self.manager = manager
        #: ``kind/name`` -> the package that alone provided a name now provided by several.
        self.former: dict[str, str] = former if former is not None else {}

    @classmethod
    def build(
        cls,
        refs: list[EntryPointRef],
        results: dict[str, Collected],
        skipped: dict[str, str],
        manager: Any,
        ended: list[Problem],
    ) -> Snapshot:
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


def discover(
    group: str, control: Control | None, cache_dir: Path, use_cache: bool
) -> tuple[Snapshot, DiscoveryStats]:
    """Cache or scan, then reuse or collect each package: one new snapshot, and how it
    went. ``cache_dir`` holds the record cache (read and written when ``use_cache``)
    and the import markers (always)."""
    started = time.perf_counter()
    stats = DiscoveryStats()
    if "plugin_registry.requirements" in sys.modules:
        sys.modules["plugin_registry.requirements"].forget_versions()
    store = cache_mod.RecordCache(cache_dir, group) if use_cache else None
    stats.cache_file = str(store.path) if store else None
    cached = store.load() if store else None
    refs, paths = _entry_points(group, cached, stats)
    results, skipped, manager, ended = _results(refs, cached, stats, control, cache_dir)
    former = dict(cached.former) if cached is not None else {}
    if store and (stats.scanned or stats.collected):
        former = cache_mod.former_providers(cached, results)
        store.write(cache_mod.Cached.dump(paths, refs, results, former))
        stats.cache_written = True
    stats.seconds = time.perf_counter() - started
    snapshot = Snapshot.build(refs, results, skipped, manager, ended)
    snapshot.former = former
    return snapshot, stats


def _entry_points(
    group: str, cached: cache_mod.Cached | None, stats: DiscoveryStats
) -> tuple[list[EntryPointRef], list[list[Any]]]:
    """The entry points of the group, from the cache while no path changed, else scanned."""
    search = cache_mod.search_path()
    if cached is not None and cache_mod.paths_unchanged(cached.paths, search):
        return cached.refs, cached.paths
    from plugin_registry.discovery import scan

    paths = cache_mod.path_snapshot(search, time.time())
    stats.scanned = True
    return scan(group), paths


def _results(
    refs: list[EntryPointRef],
    cached: cache_mod.Cached | None,
    stats: DiscoveryStats,
    control: Control | None,
    cache_dir: Path,
) -> tuple[dict[str, Collected], dict[str, str], Any, list[Problem]]:
    """Each package's records: reused from the cache where valid, else collected;
    and the packages whose import ended an earlier run, checked before the first
    import (and only then: a warm start imports no plugin code, nor the requirement checks)."""
    manager: Any = None
    results: dict[str, Collected] = {}
    skipped: dict[str, str] = {}
    ended: list[Problem] | None = None
    for ref in refs:
        why = control.loads_distribution(ref.distribution) if control is not None else ""
        if why:
            skipped[ref.key] = why
        reused = cached.reusable(ref) if cached is not None else None
        if reused is not None:
            if stats.scanned:  # what else is installed may have changed
                from plugin_registry.requirements import with_availability

                reused.records = with_availability(reused.records)
            results[ref.key] = reused
            stats.reused += 1
        elif not why:
            from plugin_registry.discovery import collect, ended_last_run, new_manager

            if ended is None:
                ended = ended_last_run(cache_dir)
            manager = manager or new_manager()
            from plugin_registry.requirements import with_availability

            collected = collect(ref, manager, cache_dir)
            collected.records = with_availability(collected.records)
            results[ref.key] = collected
            stats.collected += 1
    return results, skipped, manager, ended or []
