"""Running a third party's code without letting it write to our output.

A registration module that prints would corrupt every ``--json`` output and
every host program's stdout. While discovery imports one and calls its hooks,
both the Python streams (``sys.stdout``/``sys.stderr``) and the file
descriptors 1 and 2 (for C extensions and child processes) point at a private
buffer; what was written is kept with the package's result and shown by
``plugin-registry doctor``. The swap is process-wide for its short duration: a
host thread printing at that very moment is captured too.

A registration module that hangs is named on the real stderr after
:data:`SLOW_SECONDS`, with the variable that skips it.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator

#: After this long, a registration module still importing is named on stderr.
SLOW_SECONDS = 3.0
#: At most this much of a package's output is kept.
MAX_OUTPUT = 64 * 1024

_real_stderr_fd: int | None = None


class Output:
    """What the captured code wrote, available once the capture has ended."""

    def __init__(self) -> None:
        self.text = ""


def _flush_python_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()


@contextlib.contextmanager
def captured(stderr: bool = True) -> Iterator[Output]:
    """Capture stdout (and stderr), Python-level and fd-level, into :class:`Output`."""
    global _real_stderr_fd
    result = Output()
    _flush_python_streams()
    buffer = io.StringIO()
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    saved: list[tuple[int, int]] = []
    for fd in (1, 2) if stderr else (1,):
        try:
            copy = os.dup(fd)
        except OSError:
            continue  # that descriptor is closed; nothing to protect
        try:
            os.dup2(spool.fileno(), fd)
        except OSError:
            os.close(copy)
            continue
        saved.append((fd, copy))
    outer_stderr_fd = _real_stderr_fd
    _real_stderr_fd = next((copy for fd, copy in saved if fd == 2), outer_stderr_fd)
    old_streams = sys.stdout, sys.stderr
    sys.stdout = buffer
    if stderr:
        sys.stderr = buffer
    try:
        yield result
    finally:
        with contextlib.suppress(Exception):
            buffer.flush()
        sys.stdout, sys.stderr = old_streams
        for fd, copy in saved:
            with contextlib.suppress(OSError):
                os.dup2(copy, fd)
            os.close(copy)
        _real_stderr_fd = outer_stderr_fd
        spool.seek(0)
        raw = spool.read(MAX_OUTPUT)
        spool.close()
        text = buffer.getvalue()[:MAX_OUTPUT] + raw.decode("utf-8", "replace")
        result.text = text[:MAX_OUTPUT]


def write_stderr(message: str) -> None:
    """Write to the real stderr, also from inside a capture."""
    data = message.encode("utf-8", "backslashreplace")
    fd = _real_stderr_fd if _real_stderr_fd is not None else 2
    with contextlib.suppress(OSError):
        os.write(fd, data)


@contextlib.contextmanager
def slow_warning(message: str, seconds: float | None = None) -> Iterator[None]:
    """Print ``message`` on the real stderr if the block is still running after ``seconds``."""
    timer = threading.Timer(SLOW_SECONDS if seconds is None else seconds, write_stderr, [message])
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


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
