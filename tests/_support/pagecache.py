"""How much of a file is in the page cache (Linux ``mincore``), for the tests of the
saves that drop the cached pages of the files they replace."""

from __future__ import annotations

import ctypes
import mmap
import os
import sys
from pathlib import Path

import pytest

_PROT_READ = 1
_MAP_SHARED = 1


def resident_fraction(path: str | os.PathLike[str]) -> float:
    """The share of ``path``'s pages that are in the page cache (mapping the file faults
    nothing in: ``mincore`` reports what the cache holds)."""
    size = os.path.getsize(path)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long
    ]  # fmt: skip
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, _PROT_READ, _MAP_SHARED, fd, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap failed", os.fspath(path))
        try:
            vector = (ctypes.c_ubyte * pages)()
            if libc.mincore(address, size, vector) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed", os.fspath(path))
        finally:
            libc.munmap(address, size)
    finally:
        os.close(fd)
    return sum(v & 1 for v in vector) / pages


def require_droppable_page_cache(directory: Path) -> None:
    """Skip unless this platform and ``directory``'s file system let a file's cached
    pages be dropped (not on tmpfs, whose pages are the file)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the page cache is observed with Linux's mincore")
    probe = directory / "page-cache-probe.bin"
    with open(probe, "wb") as fh:
        fh.write(os.urandom(1 << 20))
        fh.flush()
        os.fsync(fh.fileno())
        os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    dropped = resident_fraction(probe) < 0.5
    probe.unlink()
    if not dropped:
        pytest.skip(f"the file system of {directory} keeps its pages cached (tmpfs?)")
