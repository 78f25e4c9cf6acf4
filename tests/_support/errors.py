"""``raises``: pytest.raises that also checks the error's ``reason`` (or ``subject``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest


@contextlib.contextmanager
def raises(
    error: type[BaseException] | tuple[type[BaseException], ...], why: str, match: str | None = None
) -> Iterator[Any]:
    """Expect ``error`` whose ``reason`` (or, for a ConfigurationError, ``subject``) is ``why``."""
    with pytest.raises(error, match=match) as info:
        yield info
    found = getattr(info.value, "reason", getattr(info.value, "subject", None))
    assert found == why, f"{type(info.value).__name__} has reason/subject {found!r}, not {why!r}"
