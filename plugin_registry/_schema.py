"""Files a user hands us (a lock, a hardware record), read and checked field by field.

Each problem is one line that names the file and the field, raised as the
caller's error type (the CLI turns it into ``exit 2``): never a raw traceback
from ``json``, a ``KeyError`` or a ``TypeError`` deep inside.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from collections.abc import Callable, Mapping
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


def read_json(path: str | os.PathLike[str], what: str, error: Callable[[str], Exception]) -> Any:
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

    def __init__(self, where: str, error: Callable[[str], Exception]) -> None:
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


# -- one declarative schema: a frozen dataclass read from and written to JSON ------------
#
# A record class (Device, Hardware, LockedPlugin, Lock, Settings) declares its fields once,
# as a dataclass; ``dump`` and ``load`` derive the JSON from the annotations. A field's
# metadata may add ``check`` (a function of the value: what is wrong with it, or None),
# ``json=False`` (neither written nor read) and ``keyed_by`` (a tuple of records written as
# an object keyed by that field of each). A class may say in ``UNKNOWN_FIELD`` how to
# refuse a field it lacks when it is nested in another.


def check_field(check: typing.Callable[[Any], str | None]) -> dict[str, Any]:
    """``dataclasses.field`` metadata that checks a value beyond its type."""
    return {"check": check}


def dump(record: Any) -> dict[str, Any]:
    """The JSON object of a schema dataclass (tuples as lists, mappings as objects)."""
    return {
        f.name: _dump_value(getattr(record, f.name), f.metadata.get("keyed_by"))
        for f in dataclasses.fields(record)
        if f.metadata.get("json", True)
    }


def _dump_value(value: Any, keyed_by: str | None = None) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dump(value)
    if keyed_by is not None:
        return {
            getattr(v, keyed_by): {k: x for k, x in dump(v).items() if k != keyed_by} for v in value
        }
    if isinstance(value, (tuple, list)):
        return [_dump_value(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _dump_value(v) for k, v in value.items()}
    return value


def load(cls: type[Any], data: Any, check: Checker, prefix: str = "") -> Any:
    """An instance of the schema dataclass ``cls`` from JSON ``data``: each field of its
    annotated type, a missing one its default, an unknown one refused; every problem is
    one line naming the field (raised as ``check``'s error type)."""
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init and f.metadata.get("json", True)]
    if not isinstance(data, Mapping):
        if prefix:
            raise check.fail(prefix.rstrip("."), f"must be an object, got {_name(data)}")
        raise check.error(f"{check.where}: a {_label(cls)} is a JSON object, got {_name(data)}")
    known = {f.name for f in fields}
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown and prefix:
        words = getattr(cls, "UNKNOWN_FIELD", f"is not a field of a {_label(cls)}")
        raise check.fail(f"{prefix}{unknown[0]}", words)
    if unknown:
        raise check.error(f"{check.where}: unknown field(s) {unknown}; known: {sorted(known)}")
    values: dict[str, Any] = {}
    for f in fields:
        name = f"{prefix}{f.name}"
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise check.fail(name, "is missing")
            continue
        tp = f.metadata.get("read_as", hints[f.name])
        value = _load_value(tp, data[f.name], check, name, f.metadata.get("keyed_by"))
        problem = f.metadata["check"](value) if "check" in f.metadata else None
        if problem:
            raise check.fail(name, problem)
        values[f.name] = value
    return cls(**values)


def _load_value(tp: Any, value: Any, check: Checker, name: str, keyed_by: str | None = None) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if keyed_by is not None:  # tuple[Record, ...] as {key: the record without its key}
        check.value(value, name, dict)
        return tuple(
            load(args[0], _with(entry, keyed_by, key), check, f"{name}.{key}.")
            for key, entry in value.items()
        )
    if origin in (typing.Union, types.UnionType):
        sequence = next((a for a in args if typing.get_origin(a) is tuple), None)
        if sequence is not None and isinstance(value, list):
            return _load_value(sequence, value, check, name)
        simple = [a for a in args if typing.get_origin(a) is None]
        return check.value(value, name, *simple, *([list] if sequence else []))
    if origin is tuple:
        check.value(value, name, list)
        return tuple(_load_value(args[0], v, check, f"{name}[{i}]") for i, v in enumerate(value))
    if origin is Mapping or origin is dict:
        if args[1] is Any:
            return dict(check.value(value, name, dict))
        arms = typing.get_args(args[1]) or (args[1],)
        return check.mapping(value, name, *arms)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return load(tp, value, check, f"{name}.")
    if tp is Any:
        return value
    return check.value(value, name, tp)


def _with(entry: Any, key: str, value: str) -> Any:
    return {**entry, key: value} if isinstance(entry, dict) else entry


def _label(cls: type[Any]) -> str:
    return str(getattr(cls, "LABEL", cls.__name__))


def _name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def read_record(
    cls: type[Any],
    path: str | os.PathLike[str],
    what: str,
    error: Callable[[str], Exception],
    how: str,
) -> Any:
    """The record of type ``cls`` in the JSON file at ``path`` (``cls.from_dict``), one-line
    errors; ``how`` says how to write such a file when there is none."""
    shown = os.fspath(path)
    if not os.path.lexists(shown):
        raise error(f"{what} {shown!r} does not exist; {how}")
    data = read_json(path, what, error)
    return cls.from_dict(data, where=f"{what} {shown!r}")
