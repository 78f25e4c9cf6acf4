"""Write a resolution down, reload it, and make every rank agree on it.

A :class:`Lock` names each chosen plugin with its provider, version, target and
parameters, plus the versions of torch and of the libraries those plugins
require. ``resolve(lock="plugins.lock")`` reloads exactly those plugins and
raises :class:`LockMismatchError` saying what differs when this machine no
longer matches; :func:`resolve_on_all_ranks` compares the resolution of every
rank of a ``torch.distributed`` job, so one rank missing a library is an error
on all of them instead of a hang or a silent difference.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

from plugin_registry._files import atomic_write_text
from plugin_registry._schema import Checker, read_json
from plugin_registry.errors import LockFileError as LockFileError
from plugin_registry.errors import LockMismatchError as LockMismatchError
from plugin_registry.names import Spec
from plugin_registry.records import KINDS
from plugin_registry.resolver.settings import Settings

FORMAT = 1


@dataclasses.dataclass(frozen=True)
class LockedPlugin:
    kind: str
    name: str
    distribution: str | None
    version: str | None
    target: str
    parameters: Mapping[str, Any]
    instance: bool = False

    @property
    def spec(self) -> str:
        return str(Spec(self.kind, self.distribution, self.name))


@dataclasses.dataclass(frozen=True)
class Lock:
    """The plugins of one resolution, as plain data."""

    #: The settled settings the plugins were chosen for.
    settings: Settings
    plugins: tuple[LockedPlugin, ...]
    libraries: Mapping[str, str | None]

    def plugin(self, kind: str) -> LockedPlugin:
        return next(p for p in self.plugins if p.kind == kind)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "settings": self.settings.to_dict(),
            "plugins": {
                p.kind: {
                    "name": p.name,
                    "distribution": p.distribution,
                    "version": p.version,
                    "target": p.target,
                    "parameters": dict(p.parameters),
                    "instance": p.instance,
                }
                for p in self.plugins
            },
            "libraries": dict(sorted(self.libraries.items())),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "lock") -> Lock:
        """Inverse of :meth:`to_dict`; LockFileError naming the bad field."""
        check = Checker(where, LockFileError)
        if not isinstance(data, Mapping):
            raise LockFileError(f"{where}: a lock is a JSON object, got {type(data).__name__}")
        data = dict(data)
        if check.field(data, "format", int) != FORMAT:
            raise LockFileError(
                f"{where}: lock format {data['format']!r} is not {FORMAT}; write the lock again"
            )
        settings = _settings(check, check.field(data, "settings", dict))
        plugins_data = check.field(data, "plugins", dict)
        plugins: list[LockedPlugin] = []
        for kind in KINDS:
            entry = check.field(plugins_data, kind, dict, prefix="plugins.")
            at = f"plugins.{kind}."
            extra = sorted(set(entry) - {f.name for f in dataclasses.fields(LockedPlugin)})
            if extra:
                raise check.fail(f"{at}{extra[0]}", "is not a field of a locked plugin")
            plugins.append(
                LockedPlugin(
                    kind=kind,
                    name=check.field(entry, "name", str, prefix=at),
                    distribution=check.field(entry, "distribution", str, type(None), prefix=at),
                    version=check.field(entry, "version", str, type(None), prefix=at),
                    target=check.field(entry, "target", str, prefix=at),
                    parameters=check.field(entry, "parameters", dict, prefix=at, default={}),
                    instance=check.field(entry, "instance", bool, prefix=at, default=False),
                )
            )
        libraries = check.mapping(data.get("libraries", {}), "libraries", str, type(None))
        return cls(settings, tuple(plugins), libraries)

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
            raise LockFileError(f"cannot write lock file {os.fspath(path)!r}: {why}") from None

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Lock:
        shown = os.fspath(path)
        if not os.path.lexists(shown):
            raise LockFileError(
                f"lock file {shown!r} does not exist; write one with "
                "`plugin-registry resolve ... --write-lock FILE` or Resolution.lock().write()"
            )
        data = read_json(path, "lock file", LockFileError)
        return cls.from_dict(data, where=f"lock file {shown!r}")

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


def _settings(check: Checker, data: dict[str, Any]) -> Settings:
    """The settled settings of a lock: each field of its JSON type, no other field."""
    extra = sorted(set(data) - set(Settings.FIELDS))
    if extra:
        raise check.fail(f"settings.{extra[0]}", "is not a setting a lock records")
    devices = check.field(data, "devices", int, str, list, prefix="settings.", default="auto")
    if isinstance(devices, list):
        devices = tuple(check.value(i, "settings.devices[]", int) for i in devices)
    return Settings(
        precision=check.field(data, "precision", str, type(None), prefix="settings.", default=None),
        accelerator=check.field(data, "accelerator", str, prefix="settings.", default="auto"),
        strategy=check.field(data, "strategy", str, prefix="settings.", default="auto"),
        devices=devices,
        num_nodes=check.field(data, "num_nodes", int, prefix="settings.", default=1),
    )


def _at(where: str) -> str:
    if where == "here":
        return where
    return "in the lock" if where == "lock" else f"on {where}"
