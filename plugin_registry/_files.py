"""Files the registry reads: one bounded reader, and the checks behind it.

Every file a user or another program hands us (a lock, a hardware record, a
host file a launcher names, the cache) is read through :func:`read_regular`:
a regular file only (never a FIFO that blocks or a device without end), at most
``max_bytes``, so a planted ``/dev/zero`` cannot exhaust memory. Writing is
:mod:`plugin_registry._atomic_write`'s (a warm listing, which reads the cache
through this module, loads none of it).
"""

from __future__ import annotations

import functools
import os
import re
import stat
from collections.abc import Callable


def _hostname() -> str:
    # os.uname spares importing socket on every start (the cache path imports this module).
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket  # pragma: no cover - not on this project's platforms

    return socket.gethostname()


@functools.cache
def _host() -> str:
    """This host's name as a temporary file's name carries it (computed on first use:
    a warm listing, which imports this module, writes no file)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", _hostname()) or "host"


class UnreadableFileError(OSError):
    """A file that is not a regular file, is too large, or cannot be opened."""


class UntrustedFileError(UnreadableFileError):
    """A file that the ``check`` of :func:`read_regular` refused (owner, mode)."""


def mtime_ns(path: str | os.PathLike[str]) -> int | None:
    """The mtime of ``path`` in nanoseconds, or None when it cannot be stat'ed.

    The one stat helper of the cache and of discovery's dependency records.
    """
    try:
        return os.stat(path).st_mtime_ns
    except (OSError, ValueError):
        return None


def read_regular(
    path: str | os.PathLike[str],
    *,
    max_bytes: int,
    check: Callable[[os.stat_result], str] | None = None,
) -> bytes:
    """The bytes of the regular file at ``path``; UnreadableFileError for anything else.

    Opened non-blocking, so a FIFO planted at the path fails at once instead of
    waiting for a writer; the type is checked on the open descriptor (no race
    with a swap after a check); at most ``max_bytes`` are read.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise UnreadableFileError(exc.errno, exc.strerror, os.fspath(path)) from exc
    except ValueError as exc:  # a NUL byte in the path
        raise UnreadableFileError(f"{os.fspath(path)!r} is not a valid path: {exc}") from exc
    try:
        return _read_open(fd, path, max_bytes, check)
    except OSError as exc:
        if isinstance(exc, UnreadableFileError):
            raise
        # A "regular file" that fails on read (/proc/self/mem: EIO), a disk error.
        raise UnreadableFileError(exc.errno, exc.strerror, os.fspath(path)) from exc
    finally:
        os.close(fd)


def _read_open(
    fd: int,
    path: str | os.PathLike[str],
    max_bytes: int,
    check: Callable[[os.stat_result], str] | None,
) -> bytes:
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
        raise UnreadableFileError(f"{os.fspath(path)!r} is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise UnreadableFileError(
            f"{os.fspath(path)!r} is not a regular file (a device, FIFO or socket)"
        )
    why = check(info) if check is not None else ""
    if why:
        raise UntrustedFileError(f"{os.fspath(path)!r}: {why}")
    if info.st_size > max_bytes:
        raise UnreadableFileError(
            f"{os.fspath(path)!r} is {info.st_size} bytes, more than the {max_bytes} "
            "bytes such a file may have"
        )
    chunks: list[bytes] = []
    size = 0
    while size <= max_bytes:
        chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > max_bytes:
        raise UnreadableFileError(
            f"{os.fspath(path)!r} is larger than the {max_bytes} bytes such a file may have"
        )
    return b"".join(chunks)


def read_text(path: str | os.PathLike[str], *, max_bytes: int) -> str:
    """:func:`read_regular` decoded as UTF-8; UnreadableFileError for binary data."""
    data = read_regular(path, max_bytes=max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(
            f"{os.fspath(path)!r} is not UTF-8 text (a bad byte at offset {exc.start})"
        ) from None


def untrusted_reason(info: os.stat_result) -> str:
    """'' when a file or directory is the user's own and only the user may write it."""
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        return f"it is owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"group or others may write it (mode {stat.S_IMODE(info.st_mode):04o})"
    return ""


def directory_problem(path: str | os.PathLike[str]) -> str:
    """'' when ``path`` is a directory of this user's that only this user may write,
    else why not; FileNotFoundError when it does not exist."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        return f"it cannot be examined ({exc.strerror})"
    if not stat.S_ISDIR(info.st_mode):
        return "it is not a directory"
    return untrusted_reason(info)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
