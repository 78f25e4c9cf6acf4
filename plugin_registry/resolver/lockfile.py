"""Write a resolution down, reload it, and make every rank agree on it.

A :class:`Lock` names each chosen plugin with its provider, version, target and
parameters, plus the versions of torch and of the libraries those plugins
require. ``resolve(lock="plugins.lock")`` reloads exactly those plugins and
raises a :class:`~plugin_registry.errors.ResolutionError` saying what differs when this machine no
longer matches; :func:`resolve_on_all_ranks` compares the resolution of every
rank of a ``torch.distributed`` job, so one rank missing a library is an error
on all of them instead of a hang or a silent difference.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Mapping
from typing import Any, ClassVar

from plugin_registry import _schema
from plugin_registry._atomic_write import atomic_write_text
from plugin_registry.errors import ConfigurationError
from plugin_registry.names import Spec
from plugin_registry.records import KINDS
from plugin_registry.resolver.settings import Settings

FORMAT = 1
#: How a lock file that cannot be read or written is reported.
_error = functools.partial(ConfigurationError, subject="lock")


@dataclasses.dataclass(frozen=True)
class LockedPlugin:
    kind: str
    name: str
    distribution: str | None
    version: str | None
    target: str
    parameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    instance: bool = False

    UNKNOWN_FIELD: ClassVar[str] = "is not a field of a locked plugin"

    @property
    def spec(self) -> str:
        return str(Spec(self.kind, self.distribution, self.name))


def _one_of_each_kind(plugins: tuple[LockedPlugin, ...]) -> str | None:
    kinds = [p.kind for p in plugins]
    if sorted(kinds) != sorted(KINDS):
        return f"must name one plugin of each kind {list(KINDS)}, got {kinds}"
    return None


@dataclasses.dataclass(frozen=True)
class Lock:
    """The plugins of one resolution, as plain data."""

    #: The settled settings the plugins were chosen for.
    settings: Settings
    #: One per kind; in the file, an object keyed by kind.
    plugins: tuple[LockedPlugin, ...] = dataclasses.field(
        metadata={"keyed_by": "kind", **_schema.check_field(_one_of_each_kind)}
    )
    libraries: Mapping[str, str | None] = dataclasses.field(default_factory=dict)

    def plugin(self, kind: str) -> LockedPlugin:
        return next(p for p in self.plugins if p.kind == kind)

    def to_dict(self) -> dict[str, Any]:
        data = {"format": FORMAT, **_schema.dump(self)}
        data["libraries"] = dict(sorted(self.libraries.items()))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "lock") -> Lock:
        """Inverse of :meth:`to_dict`; a ConfigurationError naming the bad field."""
        check = _schema.Checker(where, _error)
        if not isinstance(data, Mapping):
            raise _error(f"{where}: a lock is a JSON object, got {type(data).__name__}")
        data = dict(data)
        if check.field(data, "format", int) != FORMAT:
            raise _error(
                f"{where}: lock format {data['format']!r} is not {FORMAT}; write the lock again",
            )
        del data["format"]
        lock: Lock = _schema.load(cls, data, check)
        in_order = tuple(sorted(lock.plugins, key=lambda p: KINDS.index(p.kind)))
        return dataclasses.replace(lock, plugins=in_order)

    def write(self, path: str | os.PathLike[str]) -> None:
        """Atomically (the core's one writer): a reader never sees half a lock, and a
        file or symlink planted at any temporary name is never followed."""
        try:
            atomic_write_text(
                path,
                json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n",
                make_parents=False,
            )
        except OSError as exc:
            parent = os.path.dirname(os.path.abspath(os.fspath(path)))
            why = (
                f"its directory {parent!r} does not exist"
                if not os.path.isdir(parent)
                else (exc.strerror or str(exc))
            )
            raise _error(f"cannot write lock file {os.fspath(path)!r}: {why}") from None

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Lock:
        lock: Lock = _schema.read_record(
            cls,
            path,
            "lock file",
            _error,
            "write one with `plugin-registry resolve ... --write-lock FILE` or "
            "Resolution.lock().write()",
        )
        return lock

    def differences(self, other: Lock, mine: str = "lock", theirs: str = "here") -> list[str]:
        """Each way ``other`` differs, as a sentence; empty when they agree."""
        out: list[str] = []
        mine_settings, their_settings = self.settings.to_dict(), other.settings.to_dict()
        for key in Settings.FIELDS:
            a, b = mine_settings[key], their_settings[key]
            if a != b:
                out.append(f"setting {key}: {a!r} {_at(mine)}, {b!r} {_at(theirs)}")
        for kind in KINDS:
            a_p, b_p = self.plugin(kind), other.plugin(kind)
            for field in ("name", "distribution", "version", "target", "parameters"):
                a, b = getattr(a_p, field), getattr(b_p, field)
                if field == "parameters":
                    a, b = dict(a), dict(b)
                if a != b:
                    out.append(f"{kind} {field}: {a!r} {_at(mine)}, {b!r} {_at(theirs)}")
        for lib in sorted(set(self.libraries) | set(other.libraries)):
            a, b = self.libraries.get(lib), other.libraries.get(lib)
            if a != b:
                out.append(
                    f"library {lib}: {a or 'not installed'} {_at(mine)}, "
                    f"{b or 'not installed'} {_at(theirs)}"
                )
        return out


def _at(where: str) -> str:
    if where == "here":
        return where
    return "in the lock" if where == "lock" else f"on {where}"
