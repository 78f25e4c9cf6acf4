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
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from plugin_registry import _environ
from plugin_registry._files import read_text
from plugin_registry.errors import PreferencesError as PreferencesError
from plugin_registry.names import normalize_distribution, normalize_name

ENV_PRIORITY = "PLUGIN_REGISTRY_PRIORITY"
ENV_PREFER = "PLUGIN_REGISTRY_PREFER"
TABLE = "plugin-registry"
MAX_PYPROJECT_BYTES = 4 * 1024 * 1024


@dataclasses.dataclass(frozen=True, eq=False)
class Preferences:
    """Ranking overrides: ``priority[name or dist:name]`` and ``prefer[name] = dist``."""

    priority: Mapping[str, int] = dataclasses.field(default_factory=dict)
    prefer: Mapping[str, str] = dataclasses.field(default_factory=dict)
    sources: tuple[str, ...] = ()

    def priority_of(self, name: str, distribution: str | None, default: int) -> int:
        if distribution and f"{distribution}:{name}" in self.priority:
            return self.priority[f"{distribution}:{name}"]
        return self.priority.get(name, default)

    @classmethod
    def load(
        cls, start: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> Preferences:
        """From the ``pyproject.toml`` nearest ``start`` (cwd), then the environment."""
        env = os.environ if environ is None else environ
        priority: dict[str, int] = {}
        prefer: dict[str, str] = {}
        sources: list[str] = []
        found = _nearest_pyproject(Path(start) if start is not None else Path.cwd())
        if found is not None:
            table = _read_table(found)
            if table is not None:
                where = f"{found} [tool.{TABLE}]"
                priority.update(_priorities(table.get("priority", {}), where))
                prefer.update(_preferred(table.get("prefer", {}), where))
                unknown = sorted(set(table) - {"priority", "prefer"})
                if unknown:
                    raise PreferencesError(
                        f"{where}: unknown key(s) {unknown}; the table takes 'priority' "
                        "and 'prefer'"
                    )
                sources.append(str(found))
        if env.get(ENV_PRIORITY, "").strip():
            priority.update(_priorities(_pairs(env, ENV_PRIORITY, "acme-fp8=100"), ENV_PRIORITY))
            sources.append(ENV_PRIORITY)
        if env.get(ENV_PREFER, "").strip():
            prefer.update(
                _preferred(_pairs(env, ENV_PREFER, "transformer-engine=acme-fp8"), ENV_PREFER)
            )
            sources.append(ENV_PREFER)
        return cls(priority=priority, prefer=prefer, sources=tuple(sources))


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
        raise PreferencesError(f"cannot read {path}: {exc.strerror or exc}") from None
    if f"[tool.{TABLE}" not in text and f'[tool."{TABLE}"' not in text:
        return None  # most projects: no table, no TOML parse
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise PreferencesError(f"{path}: nested too deeply to read") from None
    except ValueError as exc:
        raise PreferencesError(f"{path} is not valid TOML: {str(exc).splitlines()[0]}") from None
    tool = data.get("tool", {})
    table = tool.get(TABLE) if isinstance(tool, Mapping) else None
    if table is not None and not isinstance(table, Mapping):
        raise PreferencesError(f"{path}: [tool.{TABLE}] must be a table")
    return table


def _pairs(environ: Mapping[str, str], name: str, example: str) -> dict[str, str]:
    return _environ.pairs(environ, name, example, "name=value", error=PreferencesError) or {}


def _key(name: str) -> str:
    if ":" in name:
        dist, bare = name.split(":", 1)
        return f"{normalize_distribution(dist)}:{normalize_name(bare)}"
    return normalize_name(name)


def _priorities(values: Any, where: str) -> dict[str, int]:
    if not isinstance(values, Mapping):
        raise PreferencesError(f"{where}: 'priority' must map plugin names to integers")
    out: dict[str, int] = {}
    for name, value in values.items():
        try:
            number = int(value) if type(value) in (int, str) else None
        except ValueError:
            number = None
        if number is not None and not -(2**63) <= number < 2**63:
            number = None
        if number is None:
            raise PreferencesError(
                f"{where}: priority of {name!r} must be an integer, got {value!r}"
            )
        out[_key(name)] = number
    return out


def _preferred(values: Any, where: str) -> dict[str, str]:
    if not isinstance(values, Mapping) or not all(
        isinstance(v, str) and v for v in values.values()
    ):
        raise PreferencesError(f"{where}: 'prefer' must map plugin names to distribution names")
    return {normalize_name(k): normalize_distribution(v) for k, v in values.items()}
