"""Running a third party's code without letting it write to our output.

A registration module that prints would corrupt every ``--json`` output and
every host program's stdout. While discovery imports one and calls its hooks,
both the Python streams (``sys.stdout``/``sys.stderr``) and the file
descriptors 1 and 2 (for C extensions and child processes) point at a private
buffer; what was written is kept with the package's result and shown by
``plugin-registry doctor``.

What a capture promises the host process (docs/safety.md):

* One capture at a time, process-wide: a second thread that lists waits for the
  first capture to end (two interleaved swaps left the streams captured for good).
  Captures nest in the thread that holds them; a thread that the captured code
  started (its output is the plugin's) does not wait.
* The host's other threads keep their Python output: the capture's
  ``sys.stdout``/``sys.stderr`` route a write by the thread that makes it --
  the capturing thread and threads started during the capture are captured,
  threads alive before it write through to where they wrote before. Bytes that
  a host thread writes straight to fd 1 or 2 during the capture (C code, a child
  process) cannot be told apart at the descriptor, and are captured.
* Everything is put back on every path. The saved descriptors sit above the
  numbers a plugin's ``os.closerange(3, 1024)`` reaches (unless that would grow the
  descriptor table of a multithreaded process: ~20 ms); if captured code closes
  them anyway, fd 1 and 2 are reopened from their path where they had one, else
  pointed at ``os.devnull``, never left on the capture buffer, and
  :attr:`Output.lost` names them.

A registration module that hangs is named on the real stderr after
:data:`SLOW_SECONDS`, with the variable that skips it.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

#: After this long, a registration module still importing is named on stderr.
SLOW_SECONDS = 3.0
#: At most this much of a package's output is kept.
MAX_OUTPUT = 64 * 1024

_real_stderr_fd: int | None = None

# Who captures now: one owner thread at a time, its captures nested in _frames.
_state = threading.Condition(threading.Lock())
_owner: threading.Thread | None = None
_frames: list[_Frame] = []
#: The threads alive when the outermost capture began: the host's, written through.
_host_threads: frozenset[threading.Thread] = frozenset()


class Output:
    """What the captured code wrote, available once the capture has ended."""

    def __init__(self) -> None:
        self.text = ""
        #: The streams ("stdout", "stderr") that captured code took from the process
        #: by closing the descriptors saved for them, and that had no path to
        #: reopen: they now point at the null device.
        self.lost: list[str] = []


class _Frame:
    """The Python-level text of one capture, kept up to :data:`MAX_OUTPUT`."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0

    def write(self, text: str) -> None:
        if self.size < MAX_OUTPUT:
            self.parts.append(text[: MAX_OUTPUT - self.size])
            self.size += len(self.parts[-1])

    def text(self) -> str:
        return "".join(self.parts)


def _captures_this_thread() -> bool:
    me = threading.current_thread()
    return bool(_frames) and (me is _owner or me not in _host_threads)


class _Router(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` during a capture: each write goes by its thread."""

    def __init__(self, name: str, through: Any, fd: int) -> None:
        self.name = name
        self._through = through  # where the host's threads write
        self._fd = fd
        self.buffer = _BinaryRouter(self)

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if _captures_this_thread():
            _frames[-1].write(text)
        else:
            with contextlib.suppress(Exception):
                self._through.write(text)
        return len(text)

    def flush(self) -> None:
        if not _captures_this_thread():
            with contextlib.suppress(Exception):
                self._through.flush()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._through, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self._through, "errors", None)

    def isatty(self) -> bool:
        if _captures_this_thread():
            return False
        try:
            return bool(self._through.isatty())
        except Exception:  # noqa: BLE001 - a host stream without isatty is no terminal
            return False

    def fileno(self) -> int:
        return self._fd

    def writable(self) -> bool:
        return True

    def release(self, to: Any) -> None:
        """The capture is over: whoever still holds this stream writes to ``to``."""
        with contextlib.suppress(Exception):
            self._through.flush()
        self._through = to


class _BinaryRouter(io.RawIOBase):
    """``sys.stdout.buffer`` of a :class:`_Router`: bytes, decoded, routed alike."""

    def __init__(self, text: _Router) -> None:
        self._text = text

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        raw = bytes(data)
        if _captures_this_thread():
            _frames[-1].write(raw.decode("utf-8", "replace"))
        else:
            target = getattr(self._text._through, "buffer", None)
            with contextlib.suppress(Exception):
                if target is not None:
                    target.write(raw)
                else:
                    self._text._through.write(raw.decode(self._text.encoding, "replace"))
        return len(raw)

    def flush(self) -> None:
        self._text.flush()


def _flush_python_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()


def _high_fd_base() -> int:
    """A descriptor number above the common ``closerange(3, 1024)``, where allowed and
    cheap; else 3 (the copies stay low, and a plugin that closes them is reported).

    A descriptor above the process's descriptor table grows the table, and growing the
    table of a multithreaded process (torch imported) waits for an RCU grace period:
    the first capture of a ``resolve()`` after ``import torch`` spent 20 ms there, 40%
    of its budget (benchmarks/bench_resolve.py). So the copies go high only where the
    table already reaches that far or the process has one thread.
    """
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return 3
    base = 1024 if soft < 0 or soft >= 1024 + 64 else max(3, soft - 64)  # -1: unlimited
    table, threads = _descriptor_table()
    if threads > 1 and table <= base:
        return 3
    return base


def _descriptor_table() -> tuple[int, int]:
    """The size of this process's descriptor table and its number of threads, from
    ``/proc/self/status`` (Linux); where unknown, a table that reaches any number."""
    table, threads = 1 << 30, 1
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", "rb") as fh:
        for line in fh:
            if line.startswith(b"FDSize:"):
                table = int(line.split()[1])
            elif line.startswith(b"Threads:"):
                threads = int(line.split()[1])
    return table, threads


def _move_high(fd: int) -> int:
    """``fd`` moved (close-on-exec) above the numbers a plugin usually closes."""
    try:
        import fcntl

        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _high_fd_base())
    except (ImportError, OSError):
        return fd
    os.close(fd)
    return high


def _identity(fd: int) -> tuple[int, int] | None:
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _path_of(fd: int) -> str | None:
    with contextlib.suppress(OSError):
        path = os.readlink(f"/proc/self/fd/{fd}")
        if path.startswith("/") and not path.endswith(" (deleted)"):
            return path
    return None


class _Saved:
    """A descriptor that the capture points elsewhere, and how to put it back."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.identity = _identity(fd)
        self.path = _path_of(fd)
        self.copy = _move_high(os.dup(fd))

    def restore(self) -> bool:
        """Point ``fd`` back at what it was; False when that could not be done (the
        saved copy was closed by captured code, and the file has no path to reopen)."""
        if self.identity is not None and _identity(self.copy) == self.identity:
            with contextlib.suppress(OSError):
                os.dup2(self.copy, self.fd)
                os.close(self.copy)
                return True
        # The captured code closed our copy (and the number may be reused: not ours
        # to close). Reopen the same file where it has a path, else the null device.
        target, same = self._reopen()
        with contextlib.suppress(OSError):
            os.dup2(target, self.fd)
        with contextlib.suppress(OSError):
            os.close(target)
        return same

    def _reopen(self) -> tuple[int, bool]:
        if self.path is not None:
            with contextlib.suppress(OSError):
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_NOCTTY | os.O_CLOEXEC)
                if _identity(fd) == self.identity:
                    return fd, True
                os.close(fd)
        return os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC), False


def _new_spool() -> int:
    """A nameless read-write file for fd-level output."""
    if hasattr(os, "memfd_create"):
        with contextlib.suppress(OSError):
            return _move_high(os.memfd_create("plugin-registry-capture", os.MFD_CLOEXEC))
    import tempfile

    with tempfile.TemporaryFile() as spool:
        return _move_high(os.dup(spool.fileno()))


def _read_spool(spool: int, identity: tuple[int, int] | None, fds: list[int]) -> bytes:
    """What the spool holds, read through any descriptor still open on it."""
    for fd in (spool, *fds):
        if identity is not None and _identity(fd) == identity:
            with contextlib.suppress(OSError):
                return os.pread(fd, MAX_OUTPUT, 0)
    return b""


def _through(stream: Any, fd: int, copy: int | None) -> Any:
    """Where the host's threads write during the capture: their stream, unless it
    writes to the descriptor being captured (then the saved copy of it)."""
    if stream is None or isinstance(stream, _Router) or copy is None:
        return stream
    try:
        same = stream.fileno() == fd
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        same = False
    if not same:
        return stream
    raw = io.FileIO(copy, "w", closefd=False)
    return io.TextIOWrapper(
        raw,
        encoding=getattr(stream, "encoding", None) or "utf-8",
        errors=getattr(stream, "errors", None) or "strict",
        write_through=True,
    )


@contextlib.contextmanager
def _turn() -> Iterator[_Frame | None]:
    """Wait until no other thread captures; the new frame, or None for a thread that
    captured code started (its output is captured already: nothing to swap)."""
    global _owner, _host_threads
    me = threading.current_thread()
    with _state:
        while _owner is not None and _owner is not me and me in _host_threads:
            _state.wait()
        frame = None
        if _owner is None or _owner is me:
            if _owner is None:
                _owner = me
                _host_threads = frozenset(threading.enumerate())
            frame = _Frame()
            _frames.append(frame)
    try:
        yield frame
    finally:
        if frame is not None:
            with _state:
                _frames.remove(frame)
                if not _frames:
                    _owner = None
                    _host_threads = frozenset()
                    _state.notify_all()


@contextlib.contextmanager
def captured(stderr: bool = True) -> Iterator[Output]:
    """Capture stdout (and stderr), Python-level and fd-level, into :class:`Output`."""
    global _real_stderr_fd
    result = Output()
    with _turn() as frame:
        if frame is None:
            yield result
            return
        _flush_python_streams()
        names = {1: "stdout", 2: "stderr"}
        saved: list[_Saved] = []
        spool = _new_spool()
        spool_identity = _identity(spool)
        for fd in (1, 2) if stderr else (1,):
            try:
                entry = _Saved(fd)
            except OSError:
                continue  # that descriptor is closed; nothing to protect
            try:
                os.dup2(spool, fd)
            except OSError:
                os.close(entry.copy)
                continue
            saved.append(entry)
        copies = {entry.fd: entry.copy for entry in saved}
        outer_stderr_fd = _real_stderr_fd
        _real_stderr_fd = copies.get(2, outer_stderr_fd)
        old_streams = sys.stdout, sys.stderr
        routers = [_Router("<stdout>", _through(sys.stdout, 1, copies.get(1)), 1)]
        sys.stdout = routers[0]
        if stderr:
            routers.append(_Router("<stderr>", _through(sys.stderr, 2, copies.get(2)), 2))
            sys.stderr = routers[1]
        try:
            yield result
        finally:
            sys.stdout, sys.stderr = old_streams
            for router, old in zip(routers, old_streams, strict=False):
                router.release(old)
            raw = _read_spool(spool, spool_identity, [entry.fd for entry in saved])
            for entry in saved:
                if not entry.restore():
                    result.lost.append(names[entry.fd])
            if _identity(spool) == spool_identity:
                os.close(spool)
            _real_stderr_fd = outer_stderr_fd
            text = frame.text() + raw.decode("utf-8", "replace")
            result.text = text[:MAX_OUTPUT]


def write_stderr(message: str) -> None:
    """Write to the real stderr, also from inside a capture."""
    data = message.encode("utf-8", "backslashreplace")
    fd = _real_stderr_fd if _real_stderr_fd is not None else 2
    with contextlib.suppress(OSError):
        os.write(fd, data)


class _Watchdog:
    """The one thread behind every :func:`slow_warning`: a thread started per block
    cost each environment's ``detect()`` in a ``resolve()`` 0.3-1 ms (8 of them), and
    each registration module of a cold listing as much."""

    def __init__(self) -> None:
        self._reset()
        if hasattr(os, "register_at_fork"):
            # The parent's thread is gone in a child, and it may have held the lock.
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._due: dict[int, tuple[float, str]] = {}
        self._count = 0
        self._thread: threading.Thread | None = None

    def add(self, seconds: float, message: str) -> int:
        """Have ``message`` written to the real stderr in ``seconds``; a token for
        :meth:`cancel`."""
        with self._changed:
            self._count += 1
            self._due[self._count] = (time.monotonic() + seconds, message)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="plugin-registry-slow-warning", daemon=True
                )
                self._thread.start()
            self._changed.notify()
            return self._count

    def cancel(self, token: int) -> None:
        with self._changed:
            self._due.pop(token, None)

    def _run(self) -> None:
        while True:
            with self._changed:
                while True:
                    now = time.monotonic()
                    due = sorted(t for t, (when, _) in self._due.items() if when <= now)
                    if due:
                        messages = [self._due.pop(t)[1] for t in due]
                        break
                    soonest = min((when for when, _ in self._due.values()), default=None)
                    self._changed.wait(None if soonest is None else soonest - now)
            for message in messages:
                write_stderr(message)


_watchdog = _Watchdog()


@contextlib.contextmanager
def slow_warning(message: str, seconds: float | None = None) -> Iterator[None]:
    """Print ``message`` on the real stderr if the block is still running after ``seconds``."""
    token = _watchdog.add(SLOW_SECONDS if seconds is None else seconds, message)
    try:
        yield
    finally:
        _watchdog.cancel(token)


class Interrupts:
    """Tells a real Ctrl-C from a KeyboardInterrupt that third-party code raised itself.

    While active (main thread, Python's own SIGINT handler in place), a SIGINT
    is noted before the KeyboardInterrupt is raised. Where SIGINT is ignored or
    left to the system (a background job, a daemon), Ctrl-C raises nothing, so
    every KeyboardInterrupt is self-raised; under anyone else's handler every
    KeyboardInterrupt counts as real.
    """

    def __init__(self) -> None:
        self.received = False
        self._previous: object = None
        self._installed = False
        self._cannot_raise = False

    def _handler(self, signum: int, frame: object) -> None:
        self.received = True
        raise KeyboardInterrupt

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            with contextlib.suppress(ValueError, OSError):
                handler = signal.getsignal(signal.SIGINT)
                if handler is signal.default_int_handler:
                    self._previous = signal.signal(signal.SIGINT, self._handler)
                    self._installed = True
                self._cannot_raise = handler in (signal.SIG_IGN, signal.SIG_DFL)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]

    def is_real(self, exc: BaseException) -> bool:
        """Whether ``exc`` must go through: the user's Ctrl-C, or not an interrupt at all."""
        if not isinstance(exc, KeyboardInterrupt) or self._cannot_raise:
            return False
        return self.received or not self._installed
