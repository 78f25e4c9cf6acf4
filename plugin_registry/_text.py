"""Text from plugin packages, made safe to print.

A record's summary, an install hint or an exception message comes from a third
party and may hold terminal control sequences: ``\x1b]0;...\x07`` retitles the
window, ``\x1b[2J`` clears the screen, a bidirectional override reorders what
the reader sees. Everything a plugin wrote passes through :func:`printable`
before it reaches a terminal, a warning or an error message: each such
character is shown as its escape (``\x1b``), so nothing is hidden either.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

# C0 controls but newline, DEL, C1 controls, line/paragraph separators and the
# bidirectional formatting characters, each mapped to its escape. A translate table,
# not a regex: compiling one would cost every warm listing (which imports this) ~0.3 ms.
_UNSAFE_CODES = (
    *range(0x00, 0x0A),
    *range(0x0B, 0x20),
    *range(0x7F, 0xA0),
    0x2028,
    0x2029,
    0x200E,
    0x200F,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
)
_ESCAPES = {
    code: (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}") for code in _UNSAFE_CODES
}


def printable(text: object) -> str:
    """``text`` with every control, separator and bidi character written as its escape."""
    # str.translate, not text.translate: a str subclass's own translate is not called.
    return str.translate(text if isinstance(text, str) else str(text), _ESCAPES)


def one_line(text: object) -> str:
    """:func:`printable`, newlines escaped too: for one-line fields."""
    return printable(text).replace("\n", "\\n")


def describe(exc: BaseException) -> str:
    """``Type: message`` of a third party's exception, printable, bounded; never raises."""
    try:
        text = str(exc)
    except BaseException:  # noqa: BLE001 - a hostile __str__
        text = "<the exception's message could not be read>"
    return printable(f"{type(exc).__name__}: {text[:2000]}")


def markup(text: object) -> str:
    """:func:`printable`, then escaped for rich markup: a plugin's text in a rich table."""
    from rich.markup import escape

    return escape(printable(text))


class EncodedBuffer(io.StringIO):
    """A text buffer that reports the encoding its text is bound for.

    rich reads ``encoding`` and draws ASCII boxes where box characters cannot
    be encoded (``PYTHONIOENCODING=ascii``, a C locale).
    """

    def __init__(self, encoding: str = "utf-8") -> None:
        super().__init__()
        self._encoding = encoding

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding


def join(items: Iterable[str], word: str = "and") -> str:
    """``a, b and c``: items for a sentence."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {word} " + items[-1]
