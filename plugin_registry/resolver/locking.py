"""Resolving against a lock, and across the ranks of a job.

:func:`resolve_locked` reloads exactly the plugins a :class:`~plugin_registry.resolver.lock.Lock`
names and raises :class:`LockMismatchError` saying what differs;
:func:`resolve_on_all_ranks` compares the resolution of every rank of a
``torch.distributed`` job, so one rank missing a library is an error on all of
them instead of a hang or a silent difference. :mod:`~plugin_registry.resolver.lock`
itself is data only.
"""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING, Any

from plugin_registry.errors import LockMismatchError, PluginRegistryError
from plugin_registry.resolver.lock import Lock
from plugin_registry.resolver.rules import resolve, resolve_locked

__all__ = ["resolve_locked", "resolve_on_all_ranks"]

if TYPE_CHECKING:
    from plugin_registry.resolver.resolution import Resolution


def resolve_on_all_ranks(group: Any = None, **settings: Any) -> Resolution:
    """``resolve(**settings)`` on every rank of the current process group, compared.

    Each rank resolves on its own machine; the results (or errors) are gathered
    and any difference from rank 0 raises :class:`LockMismatchError` on every
    rank, naming the ranks, their hosts and what differs. Without an initialised
    process group this is ``resolve(**settings)``.
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
    gathered: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(gathered, payload, group=group)
    problems = _disagreements(gathered)
    if problems:
        raise LockMismatchError(
            "the ranks of this job do not agree on their plugins:\n  - " + "\n  - ".join(problems)
        )
    assert resolution is not None
    return resolution


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
