"""Writing and reading files with the guarantees the built-in plugins rely on.

A plugin package uses these instead of hand-written temporaries and renames; the
built-in checkpoint IOs, the lock files and the record cache use the same code.

* :func:`atomic_write` (and :func:`atomic_write_bytes`, :func:`atomic_write_text`)
  replaces a file all or nothing: the new content goes to a temporary made with
  ``O_EXCL`` beside the target, is fsynced, gets the mode the target should have
  (the replaced file's, else ``0666`` less the umask, as ``open()`` gives), is
  renamed over the target, and the directory is fsynced. A crash or SIGKILL at
  any instant leaves the old file or the new one, whole; a failure removes the
  temporary and leaves the old file; temporaries left by dead writers are
  removed by the next write to the same path; a planted link at a predictable
  name is never followed.
  A durable write starts the disk's writeback as it goes (:func:`open_writeback`).
* :func:`open_writeback` opens a file for writing whose bytes start going to disk
  every 16 MB (Linux ``sync_file_range``), so the ``fsync`` at the end waits for
  the last few MB instead of the whole file; for a writer that opens its own
  files (DCP's, in the ``distributed`` checkpoint IO).
* :func:`release_cached_pages` drops the page cache of a file about to be replaced (a
  durable :func:`atomic_write` does it for the file it replaces): the new file's
  writes then get the memory just freed, which on a virtual machine that reports free
  memory to its host is much faster to write than memory freed seconds before.
* :func:`read_bytes` and :func:`read_text` read a file someone else may have put
  there: a regular file only (a FIFO fails at once instead of blocking, a device
  is refused), at most ``max_bytes``; anything else is an
  :class:`UnreadableFileError` (an ``OSError``), a missing file a
  ``FileNotFoundError``.

For checkpoints, :func:`plugin_registry.kinds.checkpoint_io.write_checkpoint` and
:func:`~plugin_registry.kinds.checkpoint_io.open_checkpoint` add the checkpoint
errors (a :class:`~plugin_registry.errors.CheckpointError` whose ``reason`` says why) on top.
"""

from __future__ import annotations

import os

from plugin_registry._atomic_write import atomic_write as atomic_write
from plugin_registry._atomic_write import atomic_write_text as atomic_write_text
from plugin_registry._atomic_write import fsync_directory as fsync_directory
from plugin_registry._atomic_write import open_writeback as open_writeback
from plugin_registry._atomic_write import release_cached_pages as release_cached_pages
from plugin_registry._files import UnreadableFileError as UnreadableFileError
from plugin_registry._files import read_regular as _read_regular
from plugin_registry._files import read_text as read_text

__all__ = [
    "UnreadableFileError",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "fsync_directory",
    "open_writeback",
    "read_bytes",
    "read_text",
    "release_cached_pages",
]


def atomic_write_bytes(
    path: str | os.PathLike[str],
    data: bytes | bytearray | memoryview,
    *,
    durable: bool = True,
    mode: int | None = None,
    make_parents: bool = True,
) -> None:
    """:func:`atomic_write` of ``data``."""
    atomic_write(
        path, lambda fh: fh.write(data), durable=durable, mode=mode, make_parents=make_parents
    )


def read_bytes(path: str | os.PathLike[str], *, max_bytes: int) -> bytes:
    """The bytes of the regular file at ``path``, at most ``max_bytes`` of them.

    FileNotFoundError when nothing is there; :class:`UnreadableFileError` for a
    directory, FIFO, device or socket, a larger file, or one that cannot be opened.
    """
    return _read_regular(path, max_bytes=max_bytes)
