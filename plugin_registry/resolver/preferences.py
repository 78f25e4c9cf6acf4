"""How a user changes the resolver's ranking without code.

Two knobs, each settable in the nearest ``pyproject.toml`` and overridden per
entry by an environment variable::

    [tool.plugin-registry]
    priority = { "acme-fp8" = 100, "bf16-mixed" = -5 }   # name or dist:name -> int
    prefer = { "transformer-engine" = "acme-fp8" }      # name -> distribution

    PLUGIN_REGISTRY_PRIORITY="acme-fp8=100,bf16-mixed=-5"
    PLUGIN_REGISTRY_PREFER="transformer-engine=acme-fp8"

``priority`` replaces a record's own priority; ``prefer`` picks which
distribution serves a name that several provide (the others are rejected with
that reason). ``PLUGIN_REGISTRY_PIN`` entries of the registry count as
``prefer`` too.

A priority key is read as a lookup reads a name: a concrete name
(``zstd-19``), an alias (``zstd``: the record it stands for), a parametrised
record's own name (``zstd-{level}``: all its names), each optionally qualified
(``acme-plugins:zstd``) to touch one provider only. A key that names no installed
plugin, or a ``prefer`` entry naming a distribution that does not provide the
name, is a :class:`~plugin_registry.errors.ConfigurationError` naming the key,
where it was set, and the close names (:func:`targets` checks them against the records).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from plugin_registry import _environ, _schema
from plugin_registry._files import read_text
from plugin_registry.errors import ConfigurationError
from plugin_registry.names import meant, normalize_distribution, normalize_name, suggestions
from plugin_registry.records import PluginInfo

ENV_PRIORITY = "PLUGIN_REGISTRY_PRIORITY"
ENV_PREFER = "PLUGIN_REGISTRY_PREFER"
TABLE = "plugin-registry"
MAX_PYPROJECT_BYTES = 4 * 1024 * 1024
#: How a priority or preference that cannot be read is reported.
_error = functools.partial(ConfigurationError, subject="preferences")


@dataclasses.dataclass(frozen=True, eq=False)
class Preferences:
    """Ranking overrides: ``priority[name or dist:name]`` and ``prefer[name] = dist``."""

    priority: Mapping[str, int] = dataclasses.field(default_factory=dict)
    prefer: Mapping[str, str] = dataclasses.field(default_factory=dict)
    sources: tuple[str, ...] = ()
    #: Where each key of ``priority`` and ``prefer`` was set, for error messages.
    origins: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def load(
        cls, start: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> Preferences:
        """From the ``pyproject.toml`` nearest ``start`` (cwd), then the environment."""
        env = os.environ if environ is None else environ
        priority: dict[str, int] = {}
        prefer: dict[str, str] = {}
        sources: list[str] = []
        origins: dict[str, str] = {}
        found = _nearest_pyproject(Path(start) if start is not None else Path.cwd())
        if found is not None:
            table = _read_table(found)
            if table is not None:
                where = f"{found} [tool.{TABLE}]"
                read = _schema.load(_Table, table, _schema.Checker(where, _error))
                priority.update(_priorities(read.priority, where))
                prefer.update(_preferred(read.prefer, where))
                origins.update(dict.fromkeys([*priority, *prefer], where))
                sources.append(str(found))
        if env.get(ENV_PRIORITY, "").strip():
            from_env = _priorities(_pairs(env, ENV_PRIORITY, "acme-fp8=100"), ENV_PRIORITY)
            priority.update(from_env)
            origins.update(dict.fromkeys(from_env, ENV_PRIORITY))
            sources.append(ENV_PRIORITY)
        if env.get(ENV_PREFER, "").strip():
            preferred = _preferred(
                _pairs(env, ENV_PREFER, "transformer-engine=acme-fp8"), ENV_PREFER
            )
            prefer.update(preferred)
            origins.update(dict.fromkeys(preferred, f"{ENV_PREFER} "))
            sources.append(ENV_PREFER)
        return cls(priority=priority, prefer=prefer, sources=tuple(sources), origins=origins)


@dataclasses.dataclass(frozen=True)
class _Table:
    """``[tool.plugin-registry]``: its keys and their shape (the values are checked, with
    the words of the environment's, by ``_priorities`` and ``_preferred``)."""

    priority: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    prefer: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def _nearest_pyproject(start: Path) -> Path | None:
    start = start.resolve()
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def _read_table(path: Path) -> Mapping[str, Any] | None:
    try:
        text = read_text(path, max_bytes=MAX_PYPROJECT_BYTES)
    except OSError as exc:
        raise _error(f"cannot read {path}: {exc.strerror or exc}") from None
    if f"[tool.{TABLE}" not in text and f'[tool."{TABLE}"' not in text:
        return None  # most projects: no table, no TOML parse
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise _error(f"{path}: nested too deeply to read") from None
    except ValueError as exc:
        raise _error(f"{path} is not valid TOML: {str(exc).splitlines()[0]}") from None
    tool = data.get("tool", {})
    table = tool.get(TABLE) if isinstance(tool, Mapping) else None
    if table is not None and not isinstance(table, Mapping):
        raise _error(f"{path}: [tool.{TABLE}] must be a table")
    return table


def _pairs(environ: Mapping[str, str], name: str, example: str) -> dict[str, str]:
    return _environ.pairs(environ, name, example, "name=value", subject="preferences") or {}


def _key(name: str) -> str:
    if ":" in name:
        dist, bare = name.split(":", 1)
        return f"{normalize_distribution(dist)}:{normalize_name(bare)}"
    return normalize_name(name)


def _priorities(values: Any, where: str) -> dict[str, int]:
    if not isinstance(values, Mapping):
        raise _error(f"{where}: 'priority' must map plugin names to integers")
    out: dict[str, int] = {}
    for name, value in values.items():
        try:
            number = int(value) if type(value) in (int, str) else None
        except ValueError:
            number = None
        if number is not None and not -(2**63) <= number < 2**63:
            number = None
        if number is None:
            raise _error(
                f"{where}: priority of {name!r} must be an integer, got {value!r}",
            )
        out[_key(name)] = number
    return out


def _preferred(values: Any, where: str) -> dict[str, str]:
    if not isinstance(values, Mapping) or not all(
        isinstance(v, str) and v for v in values.values()
    ):
        raise _error(f"{where}: 'prefer' must map plugin names to distribution names")
    return {normalize_name(k): normalize_distribution(v) for k, v in values.items()}


#: What a priority applies to: a record's one concrete name, or (None) all its names.
Target = tuple[PluginInfo, str | None]


def targets(preferences: Preferences, records: Sequence[PluginInfo]) -> dict[Target, int]:
    """Each priority key resolved against ``records`` as a lookup resolves a name;
    a ConfigurationError for a key that names none, or a ``prefer`` that cannot hold."""
    out: dict[Target, int] = {}
    # Bare keys first: a qualified key for the same plugin is the more precise, and wins.
    for key in sorted(preferences.priority, key=lambda k: ":" in k):
        found = _targets_of(key, records)
        if not found:
            raise _unknown(key, "priority", preferences, records)
        for target in found:
            out[target] = preferences.priority[key]
    for name, dist in preferences.prefer.items():
        providers = sorted({r.qualifier for r in records if r.distribution and _answers(r, name)})
        if not providers:
            raise _unknown(name, "prefer", preferences, records)
        if dist not in providers:
            raise _error(
                f"{_origin(preferences, name)}: prefer {name!r} from {dist!r}, which does not "
                f"provide it; it is provided by {', '.join(providers)}",
            )
    return out


def _answers(record: PluginInfo, name: str) -> bool:
    spelled = {normalize_name(s) for s in (record.name, *record.aliases)}
    return name in spelled or name in record.names()


def _targets_of(key: str, records: Sequence[PluginInfo]) -> list[Target]:
    dist, _, bare = key.rpartition(":")
    found: list[Target] = []
    for record in records:
        if dist and record.qualifier != dist:
            continue
        if bare in {normalize_name(s) for s in (record.name, *record.aliases)} and (
            bare not in record.names() or not _concrete(record, bare)
        ):
            found.append((record, None))  # the record's own name, or an alias of all of it
            continue
        concrete = _concrete(record, bare)
        if concrete is not None:
            found.append((record, concrete or None))
    return found


def _concrete(record: PluginInfo, name: str) -> str | None:
    """The concrete name ``name`` (a name or alias of ``record``) selects; '' when it
    selects no parameter (an alias of the whole record); None when it is not one."""
    for exp in record.expansions():
        if exp.name != name:
            continue
        if not exp.parameters:
            return "" if record.name_parameters else normalize_name(record.name)
        return record.concrete_name(exp.parameters)
    return None


def _origin(preferences: Preferences, key: str) -> str:
    return preferences.origins.get(key, "preferences").strip()


def _unknown(
    key: str, table: str, preferences: Preferences, records: Sequence[PluginInfo]
) -> ConfigurationError:
    bare = key.rpartition(":")[2]
    names = {n for r in records for n in (*r.names(), normalize_name(r.name))}
    close = suggestions(bare, names)
    hint = meant(close, "; did you mean")
    return _error(
        f"{_origin(preferences, key)}: {table} key {key!r} names no installed plugin{hint} "
        "(keys are plugin names, aliases or dist:name; 'plugin-registry list' shows them)",
    )
