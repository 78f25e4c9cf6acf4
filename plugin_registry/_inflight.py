"""Markers of registration imports in progress, so that one that ends the process is named.

A registration module runs in the listing process; one that calls ``os._exit`` (or
crashes the interpreter, or is killed) ends the listing with no output, and nothing
in that process can report it. So each import leaves a small file in the cache
directory while it runs, removed when it returns; the next discovery that imports
plugin code finds a marker whose process is gone, names the package on stderr
before importing anything, and reports it as a problem of that package.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from plugin_registry import _files

_MAX_BYTES = 64 * 1024
_NAME_RE = re.compile(r"^\.importing\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)\.(?P<tid>\d+)\.json$")
_FIELDS = ("distribution", "version", "entry_point", "value")


def _usable(directory: Path) -> bool:
    """The directory exists (made if not) and only this user may write it."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return not _files.directory_problem(directory)
    except OSError:
        return False


@contextlib.contextmanager
def marking(directory: Path | None, fields: dict[str, str]) -> Iterator[None]:
    """A marker naming ``fields`` (the entry point being imported) for the block's length.

    Best effort: a directory that cannot be written only loses the report.
    """
    path = None
    if directory is not None and _usable(directory):
        name = f".importing.{_files._host()}.{os.getpid()}.{threading.get_ident()}.json"
        path = directory / name
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o600)
            try:
                os.write(fd, json.dumps({**fields, "pid": os.getpid()}).encode())
            finally:
                os.close(fd)
        except OSError:
            path = None
    pid = os.getpid()
    try:
        yield
    finally:
        # A child forked inside the block is not the importer: the marker is the parent's.
        if path is not None and os.getpid() == pid:
            with contextlib.suppress(OSError):
                os.unlink(path)


def left_behind(directory: Path | None) -> list[dict[str, Any]]:
    """The markers, on this host, of processes that ended inside an import; each removed.

    A marker of a live process (another listing now importing) is left alone.
    """
    if directory is None or not _usable(directory):
        return []
    found: list[dict[str, Any]] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    for name in names:
        match = _NAME_RE.match(name)
        if not match or match["host"] != _files._host() or _files._alive(int(match["pid"])):
            continue
        path = directory / name
        try:
            raw = _files.read_regular(path, max_bytes=_MAX_BYTES, check=_files.untrusted_reason)
            data = json.loads(raw)
        except (OSError, ValueError, RecursionError):
            data = None  # written partly by a process that died writing it, or not ours
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
        if isinstance(data, dict) and all(type(data.get(k)) is str for k in _FIELDS):
            found.append({k: data[k] for k in _FIELDS} | {"pid": int(match["pid"])})
    return found
