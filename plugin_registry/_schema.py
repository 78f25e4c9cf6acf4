"""Files a user hands us (a lock, a hardware record), read and checked field by field.

Each problem is one line that names the file and the field, raised as the
caller's error type (the CLI turns it into ``exit 2``): never a raw traceback
from ``json``, a ``KeyError`` or a ``TypeError`` deep inside.
"""

from __future__ import annotations

import json
import os
from typing import Any

from plugin_registry import _files

#: A lock or hardware record is a few KiB; anything over this is not one.
MAX_BYTES = 4 * 1024 * 1024

_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "an object",
    type(None): "null",
}


def read_json(path: str | os.PathLike[str], what: str, error: type[Exception]) -> Any:
    """The JSON value in the file at ``path``; ``error`` naming ``what`` and the path."""
    shown = repr(os.fspath(path))
    try:
        text = _files.read_text(path, max_bytes=MAX_BYTES)
    except FileNotFoundError:
        raise error(f"{what} {shown} does not exist") from None
    except _files.UnreadableFileError as exc:
        raise error(f"cannot read {what} {shown}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise error(f"{what} {shown} is nested too deeply to be one") from None
    except ValueError as exc:
        raise error(f"{what} {shown} is not JSON: {str(exc).splitlines()[0]}") from None


class Checker:
    """Checks fields of one file's data; every error names the file and the field."""

    def __init__(self, where: str, error: type[Exception]) -> None:
        self.where = where
        self.error = error

    def fail(self, field: str, message: str) -> Exception:
        return self.error(f"{self.where}: field {field!r} {message}")

    def value(self, value: Any, field: str, *types: type) -> Any:
        """``value`` when it is of one of ``types`` (exactly: ``True`` is no integer)."""
        if type(value) not in types and not (float in types and type(value) is int):
            wanted = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
            raise self.fail(
                field, f"must be {wanted}, got {_TYPE_NAMES.get(type(value), type(value).__name__)}"
            )
        return value

    def field(
        self, data: dict[str, Any], key: str, *types: type, prefix: str = "", default: Any = ...
    ) -> Any:
        name = f"{prefix}{key}"
        if key not in data:
            if default is not ...:
                return default
            raise self.fail(name, "is missing")
        return self.value(data[key], name, *types)

    def mapping(self, value: Any, field: str, *value_types: type) -> dict[str, Any]:
        """A JSON object whose values are of ``value_types``."""
        self.value(value, field, dict)
        for key, item in value.items():
            self.value(item, f"{field}.{key}", *value_types)
        return dict(value)

    def strings(self, value: Any, field: str) -> list[str]:
        self.value(value, field, list)
        for index, item in enumerate(value):
            self.value(item, f"{field}[{index}]", str)
        return list(value)
