"""Crash-safe replacement of a file: temporary file, fsync, rename, fsync of the directory.

A reader, or a process started after a crash at any instant, finds either the old
file or the new one, complete. A temporary left by a writer that was killed is
removed by the next save to the same path.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
from collections.abc import Callable
from typing import BinaryIO

_HOST = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname()) or "host"


def _temporary_re(base: str) -> re.Pattern[str]:
    return re.compile(rf"^\.{re.escape(base)}\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)\.\w+\.tmp$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_temporaries(path: str) -> list[str]:
    """Temporaries for ``path`` whose writer, on this host, is dead."""
    directory, base = os.path.split(os.path.abspath(path))
    pattern = _temporary_re(base)
    found = []
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(directory):
            m = pattern.match(name)
            if m and m["host"] == _HOST and not _alive(int(m["pid"])):
                found.append(os.path.join(directory, name))
    return found


def fsync_directory(directory: str) -> None:
    """Make a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, write: Callable[[BinaryIO], None], *, durable: bool = True) -> None:
    """Replace ``path`` with what ``write`` writes, all or nothing.

    On any error the temporary is removed and ``path`` is left as it was.
    ``durable=False`` skips the fsyncs (still atomic against a process crash,
    not against a power loss).
    """
    path = os.path.abspath(path)
    directory, base = os.path.split(path)
    os.makedirs(directory, exist_ok=True)
    for stale in stale_temporaries(path):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stale)
    fd, tmp = tempfile.mkstemp(
        dir=directory, prefix=f".{base}.{_HOST}.{os.getpid()}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_directory(directory)
