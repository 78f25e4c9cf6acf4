"""The checkpoint-IO kind: how a checkpoint dict reaches storage and comes back."""

from __future__ import annotations

import errno
import os
import stat
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, BinaryIO

from plugin_registry.errors import CheckpointError as CheckpointError

PathLike = str | os.PathLike[str]

#: What a checkpoint IO record ``provides`` when every rank writes its own shards and
#: loads reshard (``torch.distributed.checkpoint``): the resolver chooses such a plugin
#: when the strategy shards parameters (FSDP, DeepSpeed stage 3), and only then unless
#: it is named, since a plain strategy has nothing to shard.
SHARDED_CHECKPOINT = "sharded-checkpoint"


class CheckpointIO(ABC):
    """Save, load and remove checkpoints: the interface of Lightning's ``CheckpointIO``."""

    def __repr__(self) -> str:
        # The constructor's arguments, so that a log line says which plugin this is.
        from plugin_registry.kinds._repr import plugin_repr

        return plugin_repr(self)

    @abstractmethod
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: PathLike, storage_options: Any | None = None
    ) -> None:
        """Write ``checkpoint`` (tensors and plain values) to ``path``.

        Called by the training loop at each checkpoint; must not change
        ``checkpoint``. ``storage_options`` are the plugin's own extras.
        """

    @abstractmethod
    def load_checkpoint(
        self, path: PathLike, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Read the checkpoint at ``path``; tensors go to ``map_location``.

        Callers that leave it out get the plugin's default: the built-ins (like
        Lightning's ``TorchCheckpointIO``) load onto the CPU, since every rank of a
        resumed GPU job would otherwise load the whole checkpoint onto the device that
        saved it; None means where each tensor was saved.

        ``weights_only`` None means the plugin's safe default (no arbitrary
        unpickling); a caller opts out with ``weights_only=False``.
        """

    @abstractmethod
    def remove_checkpoint(self, path: PathLike) -> None:
        """Delete the checkpoint at ``path``."""

    def teardown(self) -> None:
        """Release resources (threads, handles); called when training ends."""


def save_failure(path: PathLike, exc: OSError) -> str:
    """Why a save failed, from its OSError, and that the previous checkpoint is intact."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        cause = "the disk is full or the file size limit was reached"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        cause = "no permission to write there"
    elif exc.errno == errno.EISDIR:
        cause = "the path is a directory"
    elif exc.errno in (errno.ENOTDIR, errno.EEXIST):
        cause = "a parent of the path is a file, not a directory"
    else:
        cause = type(exc).__name__
    return (
        f"cannot save checkpoint to {os.fspath(path)!r}: {cause} ({exc.strerror or exc}); "
        "the previous checkpoint there, if any, is intact"
    )


def write_checkpoint(
    path: PathLike,
    write: Callable[[BinaryIO], object],
    *,
    durable: bool = True,
    mode: int | None = None,
) -> None:
    """Replace the checkpoint file at ``path`` with what ``write(fh)`` writes, all or
    nothing, as the built-in checkpoint IOs do (:func:`plugin_registry.files.atomic_write`).

    An OSError (a full disk, no permission, a parent that is a file) becomes a
    :class:`CheckpointError` naming the path and the cause and saying that the
    previous checkpoint is intact; anything else ``write`` raises propagates, with
    the previous checkpoint equally intact.
    """
    from plugin_registry._atomic_write import atomic_write

    shown = os.fspath(path)
    if not shown.strip() or "\0" in shown:
        raise CheckpointError(
            f"{shown!r} is not a checkpoint path: it is empty or has a NUL byte", shown
        )
    try:
        atomic_write(shown, write, durable=durable, mode=mode)
    except OSError as exc:
        raise CheckpointError(save_failure(shown, exc), shown) from exc


def open_checkpoint(path: PathLike) -> BinaryIO:
    """The checkpoint file at ``path``, open for binary reading (close it, or use ``with``).

    A :class:`CheckpointError` with reason ``"not-found"`` (a ``FileNotFoundError``)
    when nothing is there, ``"failed"`` for a directory, ``"unreadable"`` for a FIFO,
    device or socket (opened without blocking, checked on the open descriptor, so a
    FIFO planted at the path never hangs the load) or a file that cannot be opened.
    """
    shown = os.fspath(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(shown, flags)
    except FileNotFoundError:
        raise CheckpointError(
            f"no checkpoint at {shown!r}: the path does not exist", shown, reason="not-found"
        ) from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise CheckpointError(
            f"cannot open checkpoint {shown!r}: {reason}", shown, reason="unreadable"
        ) from exc
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise CheckpointError(
                f"{shown!r} is a directory, not a checkpoint file; pass the file inside it", shown
            )
        if not stat.S_ISREG(info.st_mode):
            raise CheckpointError(
                f"cannot load checkpoint {shown!r}: it is not a regular file (a FIFO, device or "
                "socket); a checkpoint is made of regular files only",
                shown,
                reason="unreadable",
            )
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
