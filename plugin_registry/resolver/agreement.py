"""Resolving against a lock, and across the ranks of a job.

:func:`resolve_locked` reloads exactly the plugins a
:class:`~plugin_registry.resolver.lockfile.Lock` names and raises
:class:`~plugin_registry.errors.ResolutionError` saying what differs;
:func:`resolve_on_all_ranks` compares the resolution of every rank of a
``torch.distributed`` job, so one rank missing a library is an error on all of
them instead of a hang or a silent difference. :mod:`~plugin_registry.resolver.lockfile`
itself is data only.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import time
from typing import TYPE_CHECKING, Any

from plugin_registry.errors import PluginRegistryError, ResolutionError
from plugin_registry.resolver.choosing import Resolver, resolve
from plugin_registry.resolver.lockfile import Lock

__all__ = ["resolve_locked", "resolve_on_all_ranks"]

if TYPE_CHECKING:
    import os

    from plugin_registry.registry import Registry
    from plugin_registry.resolver.hardware import Hardware
    from plugin_registry.resolver.preferences import Preferences
    from plugin_registry.resolver.resolution import Resolution


def resolve_locked(
    lock: Lock | str | os.PathLike[str],
    *,
    hardware: Hardware | str | os.PathLike[str] | None = None,
    registry: Registry | None = None,
    preferences: Preferences | None = None,
) -> Resolution:
    """Resolve exactly the locked plugins and settings; raise if anything differs."""
    return Resolver.on(registry, hardware, preferences).resolve_locked(lock)


def resolve_on_all_ranks(group: Any = None, **settings: Any) -> Resolution:
    """``resolve(**settings)`` on every rank of the current process group, compared.

    Each rank resolves on its own machine; the results (or errors) are gathered
    and any difference from rank 0 raises :class:`ResolutionError` (reason
    ``"ranks-disagree"``) on every rank, naming the ranks, their hosts and what
    differs. Without an initialised process group this is ``resolve(**settings)``.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return resolve(**settings)
    resolution: Resolution | None = None
    payload: dict[str, Any] = {"host": socket.gethostname()}
    try:
        resolution = resolve(**settings)
        payload["lock"] = resolution.lock().to_dict()
    except PluginRegistryError as exc:
        payload["error"] = f"{type(exc).__name__}: {exc}"
    gathered = _gather(dist, payload, group)
    problems = _disagreements(gathered)
    if problems:
        raise ResolutionError(
            "the ranks of this job do not agree on their plugins:\n  - " + "\n  - ".join(problems),
            reason="ranks-disagree",
        )
    assert resolution is not None
    return resolution


_calls = itertools.count()
#: How long a failed exchange waits for the other ranks' keys before naming the missing.
ARRIVAL_SECONDS = 10.0


def _gather(dist: Any, payload: dict[str, Any], group: Any) -> list[Any]:
    """Every rank's payload; a rank that is gone is named, not left to gloo's words.

    Each rank first leaves its host in the job's store under this call's number (every
    rank calls in the same order): when the exchange fails, the ranks that never
    reached it are the ones whose key is missing.
    """
    call = next(_calls)
    ranks = dist.get_process_group_ranks(group) if group is not None else None
    ranks = ranks or list(range(dist.get_world_size()))
    store = _store(dist)
    key = f"plugin_registry/resolve_on_all_ranks/{call}/"
    if store is not None:
        with contextlib.suppress(Exception):
            store.set(key + str(dist.get_rank()), payload["host"])
    gathered: list[Any] = [None] * len(ranks)
    try:
        dist.all_gather_object(gathered, payload, group=group)
    except (RuntimeError, ValueError) as exc:
        raise ResolutionError(
            _gone(store, key, ranks, dist.get_rank(), exc), reason="ranks-disagree"
        ) from exc
    return gathered


def _store(dist: Any) -> Any:
    """The default group's key-value store (private in torch; None where it is not)."""
    try:
        return dist.distributed_c10d._get_default_store()
    except Exception:  # noqa: BLE001 - no store to ask: the message says less
        return None


def _gone(store: Any, key: str, ranks: list[int], me: int, exc: BaseException) -> str:
    """Which ranks did not reach the exchange, in words, with the backend's own."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    head = (
        f"the ranks of this job could not compare their plugins: the exchange failed on rank "
        f"{me} on {socket.gethostname()} ({text[:300]})"
    )
    if store is None:
        return head + "; a rank stopped, or lost its connection"
    # A rank still on its way (slower, not gone) is given a few seconds to arrive.
    deadline = time.monotonic() + ARRIVAL_SECONDS
    try:
        missing = list(ranks)
        while missing:
            missing = [r for r in missing if not store.check([key + str(r)])]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    except Exception:  # noqa: BLE001 - the store itself is gone with the rank that held it
        return head + "; the job's store is unreachable: rank 0, which holds it, has stopped"
    if not missing:
        return head + "; every rank reached it, so one stopped or lost its connection during it"
    return (
        head + f"; {_ranks(missing)} never reached resolve_on_all_ranks: "
        f"{'it' if len(missing) == 1 else 'they'} stopped before it (see that rank's own "
        "output) or called something else"
    )


def _disagreements(gathered: list[dict[str, Any]]) -> list[str]:
    """Each way a rank's answer differs from rank 0's, ranks of one host with one answer
    reported together: "ranks 2, 3 on node2 differ from rank 0 on node1: ..."."""
    groups: dict[tuple[str, str], list[int]] = {}
    for rank, item in enumerate(gathered):
        answer = json.dumps({k: v for k, v in item.items() if k != "host"}, sort_keys=True)
        groups.setdefault((str(item.get("host")), answer), []).append(rank)

    def where(ranks: list[int]) -> str:
        return f"{_ranks(ranks)} on {gathered[ranks[0]].get('host')}"

    def at(ranks: list[int]) -> str:
        return f"{gathered[ranks[0]].get('host')} ({_ranks(ranks)})"

    problems: list[str] = []
    reference = gathered[0]
    for ranks in groups.values():
        item = gathered[ranks[0]]
        if "error" in item:
            problems.append(f"{where(ranks)} could not resolve: {item['error']}")
    if problems:
        return problems
    mine = Lock.from_dict(reference["lock"])
    for ranks in groups.values():
        if ranks[0] == 0:
            continue
        differs = "differ" if len(ranks) > 1 else "differs"
        for diff in mine.differences(
            Lock.from_dict(gathered[ranks[0]]["lock"]), mine=at([0]), theirs=at(ranks)
        ):
            problems.append(f"{where(ranks)} {differs} from {where([0])}: {diff}")
    return problems


def _ranks(ranks: list[int]) -> str:
    """ "rank 3", "ranks 2, 3", "ranks 8-15, 17": a node of a large job is one range."""
    runs: list[list[int]] = []
    for rank in sorted(ranks):
        if runs and rank == runs[-1][-1] + 1:
            runs[-1].append(rank)
        else:
            runs.append([rank])
    parts = [f"{run[0]}-{run[-1]}" if len(run) > 2 else ", ".join(map(str, run)) for run in runs]
    return f"{'rank' if len(ranks) == 1 else 'ranks'} {', '.join(parts)}"
