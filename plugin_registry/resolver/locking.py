"""Resolving against a lock, and across the ranks of a job.

:func:`resolve_locked` reloads exactly the plugins a :class:`~plugin_registry.resolver.lock.Lock`
names and raises :class:`LockMismatchError` saying what differs;
:func:`resolve_on_all_ranks` compares the resolution of every rank of a
``torch.distributed`` job, so one rank missing a library is an error on all of
them instead of a hang or a silent difference. :mod:`~plugin_registry.resolver.lock`
itself is data only.
"""

from __future__ import annotations

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
    rank, naming the ranks and what differs. Without an initialised process
    group this is ``resolve(**settings)``.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return resolve(**settings)
    resolution: Resolution | None = None
    payload: dict[str, Any]
    try:
        resolution = resolve(**settings)
        payload = {"lock": resolution.lock().to_dict()}
    except PluginRegistryError as exc:
        payload = {"error": f"{type(exc).__name__}: {exc}"}
    gathered: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(gathered, payload, group=group)
    problems: list[str] = []
    for rank, item in enumerate(gathered):
        if "error" in item:
            problems.append(f"rank {rank} could not resolve: {item['error']}")
    if not problems:
        reference = Lock.from_dict(gathered[0]["lock"])
        for rank, item in enumerate(gathered[1:], start=1):
            for diff in reference.differences(
                Lock.from_dict(item["lock"]), mine="rank 0", theirs=f"rank {rank}"
            ):
                problems.append(f"rank {rank} differs from rank 0: {diff}")
    if problems:
        raise LockMismatchError(
            "the ranks of this job do not agree on their plugins:\n  - " + "\n  - ".join(problems)
        )
    assert resolution is not None
    return resolution
