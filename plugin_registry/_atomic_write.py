"""Files the registry writes: one atomic writer.

Every file the registry writes (the record cache, lock files, hardware records)
and every checkpoint the built-in checkpoint IO writes goes through
:func:`atomic_write`: a new file made with ``O_EXCL`` (``mkstemp``) beside the
target, written, fsynced, given the mode the target should have, renamed over
the target, and the directory fsynced. A planted file or symlink at any
predictable name is never followed, a failure leaves the old file as it was,
and a reader sees the old file or the new one, whole.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import stat
import sys
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

from plugin_registry._files import _alive, _host


def current_umask() -> int:
    """The process umask, read without changing it where the kernel tells it."""
    with (
        contextlib.suppress(OSError, ValueError),
        # utf-8, the codec loaded at start-up: a first codec import in an async
        # IO's saving thread would race the caller's imports.
        open("/proc/self/status", encoding="utf-8") as fh,
    ):
        for line in fh:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    # os.umask can only be read by setting it; done at once, back to back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temporary_re(base: str) -> re.Pattern[str]:
    return re.compile(rf"^\.{re.escape(base)}\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)\.\w+\.tmp$")


def stale_temporaries(path: str) -> list[str]:
    """Temporary files for ``path`` whose writer, on this host, is dead.

    Only plain files count: a directory or anything else planted under such a
    name is left alone (and never blocks a save).
    """
    directory, base = os.path.split(os.path.abspath(path))
    pattern = _temporary_re(base)
    found = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            m = pattern.match(entry.name)
            if not m or m["host"] != _host() or _alive(int(m["pid"][:12])):
                continue
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False):
                    found.append(entry.path)
    return found


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Make a rename or a new file in ``directory`` survive a power loss."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _target_mode(path: str, mode: int | None) -> int:
    """The mode the new file gets: ``mode``, else the old file's, else 0666 less umask."""
    if mode is not None:
        return mode
    try:
        info = os.stat(path)
    except OSError:
        return 0o666 & ~current_umask()
    return stat.S_IMODE(info.st_mode) if stat.S_ISREG(info.st_mode) else 0o666 & ~current_umask()


def atomic_write(
    path: str | os.PathLike[str],
    write: Callable[[BinaryIO], object],
    *,
    durable: bool = True,
    mode: int | None = None,
    make_parents: bool = True,
) -> None:
    """Replace ``path`` with what ``write(fh)`` writes to the binary file ``fh``, all or
    nothing.

    On any error the temporary is removed and ``path`` is left as it was. The new
    file gets ``mode``, or the mode of the file it replaces, or what ``open()``
    would give (0666 less the umask). ``durable=False`` skips the fsyncs (still
    atomic against a process crash, not against a power loss). Stale
    temporaries of earlier writers that died are removed first, best effort.
    """
    path = os.path.abspath(os.fspath(path))
    directory, base = os.path.split(path)
    if make_parents:
        os.makedirs(directory, exist_ok=True)
    for stale in stale_temporaries(path):
        with contextlib.suppress(OSError):
            os.unlink(stale)
    import tempfile  # only when writing: a warm listing writes nothing

    new_mode = _target_mode(path, mode)
    if durable:  # the old file's pages are clean (fsynced): dropping them writes nothing
        release_cached_pages(path, min_bytes=_RELEASE_LATER_BYTES)
    fd, tmp = tempfile.mkstemp(
        dir=directory, prefix=f".{base}.{_host()}.{os.getpid()}.", suffix=".tmp"
    )
    old: str | None = None
    try:
        with open_writeback(fd) if durable else os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fchmod(fh.fileno(), new_mode)
            if durable:
                os.fsync(fh.fileno())
        old = _keep_old(path, tmp)
        os.replace(tmp, path)
    except BaseException:
        for leftover in (tmp, old):
            if leftover is not None:
                with contextlib.suppress(OSError):
                    os.unlink(leftover)
        raise
    if durable:
        fsync_directory(directory)
    if old is not None:
        threading.Thread(target=_unlink_quietly, args=(old,), name="atomic_write-release").start()


#: Every this many bytes written, a durable write asks the kernel to start writing them.
WRITEBACK_STEP = 16 * 2**20


class _WritebackFile(io.BufferedWriter):
    """A buffered binary file that has the kernel start writing each
    :data:`WRITEBACK_STEP` bytes to disk once they are written (Linux
    ``sync_file_range``), so the disk works while the rest is written and the fsync at
    the end waits for the last step only: 200 MB written and fsynced took ~100 ms
    instead of ~137 on the team's machine. Elsewhere it is a plain buffered file."""

    def __init__(self, raw: io.FileIO) -> None:
        super().__init__(raw)
        self._written = 0
        self._started = 0

    def write(self, data: Any, /) -> int:
        count = super().write(data)
        self._written += count
        if self._written - self._started >= WRITEBACK_STEP:
            _start_writeback(self.fileno(), self._started, self._written - self._started)
            self._started = self._written
        return count


def open_writeback(file: str | os.PathLike[str] | int, mode: str = "wb") -> BinaryIO:
    """A binary file for writing (``mode`` "wb", "xb" or "ab"; ``file`` a path or an open
    descriptor, which it then owns) whose bytes start going to disk as they are written:
    call ``os.fsync`` at the end as usual; it then waits for the last few MB only."""
    if mode not in ("wb", "xb", "ab"):
        raise ValueError(
            f"open_writeback writes binary files: mode 'wb', 'xb' or 'ab', not {mode!r}"
        )
    raw = io.FileIO(file, mode[0], closefd=True)
    return _WritebackFile(raw)


def _start_writeback(fd: int, offset: int, count: int) -> None:
    start = _sync_file_range()
    if start is not None:
        start(fd, offset, count, _SYNC_FILE_RANGE_WRITE)  # advisory: its result is ignored


_SYNC_FILE_RANGE_WRITE = 2


@functools.cache
def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


# Replacing a large file frees its blocks inside rename(), on the caller's time (50 ms
# for 200 MB on ext4): a second link keeps the old data alive past the rename, and a
# thread drops it. The link is named like a temporary, so a crash leaves nothing that
# the next save does not remove.
_RELEASE_LATER_BYTES = 32 * 2**20


def release_cached_pages(path: str | os.PathLike[str], *, min_bytes: int = 0) -> None:
    """Drop the page cache of the regular file at ``path`` (its data stays on disk) if
    it has at least ``min_bytes``, best effort: for a file about to be replaced by one
    as large (a link is not followed; anything else is left alone).

    The new file's pages come from free memory. Pages freed long ago are cold: on a
    virtual machine that reports free memory to its host (virtio free page reporting,
    as on the team's machines), the first write to each faults on the host: 200 MB
    saves 2.5 s apart took ~350 ms each, ~110 ms with the replaced file's pages
    dropped first. Those pages, dropped now, are the ones the new file's writes get.
    The old file's readers lose nothing but the cache."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:
        return  # pragma: no cover - not on this project's platforms
    try:
        fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0))
    except (OSError, ValueError):
        return
    try:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_size >= min_bytes:
            advise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass
    finally:
        os.close(fd)


def _keep_old(path: str, tmp: str) -> str | None:
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size < _RELEASE_LATER_BYTES:
            return None
        old = f"{tmp[: -len('.tmp')]}old.tmp"
        os.link(path, old)
    except OSError:
        return None
    return old


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def atomic_write_text(
    path: str | os.PathLike[str],
    text: str,
    *,
    mode: int | None = None,
    durable: bool = True,
    make_parents: bool = True,
) -> None:
    """:func:`atomic_write` of UTF-8 text."""
    data = text.encode("utf-8")

    def write(fh: BinaryIO) -> None:
        fh.write(data)

    atomic_write(path, write, mode=mode, durable=durable, make_parents=make_parents)
