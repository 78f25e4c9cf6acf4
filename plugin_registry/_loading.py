"""Loading a plugin: importing its target, checking the parameters, building it.

What :meth:`Registry.load <plugin_registry.registry.Registry.load>` does once it
has found the record; every failure is a :class:`PluginLoadError` whose
``stage`` says where (``import``, ``parameters``, ``build``), or a
:class:`~plugin_registry.errors.ConfigurationError` for an override that contradicts the name.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from plugin_registry._text import describe, join, printable
from plugin_registry.errors import ConfigurationError, PluginLoadError
from plugin_registry.kinds import base_class
from plugin_registry.names import did_you_mean, normalize_name
from plugin_registry.records import PluginInfo


def build(record: PluginInfo, factory: Any, params: Mapping[str, Any], shown: str) -> Any:
    """``factory(**params)``, checked: parameters it takes, an instance of the kind's base."""
    _check_parameters(record, factory, params)
    try:
        instance = factory(**params)
    except Exception as exc:
        raise PluginLoadError(
            f"building {record.kind} plugin {shown} ({record.target}) from "
            f"{record.provider} with {printable(repr(dict(params)))} failed: {describe(exc)}",
            stage="build",
        ) from exc
    base = base_class(record.kind)
    if base is not None and not isinstance(instance, base):
        raise PluginLoadError(
            f"{record.kind} plugin {record.name!r} from {record.provider}: {record.target} "
            f"built a {type(instance).__name__}, which is not a "
            f"{base.__module__}.{base.__qualname__}",
            stage="build",
        )
    return instance


def import_target(record: PluginInfo) -> Any:
    """The class or factory a record names, imported now."""
    module_name, _, attr = record.target.partition(":")
    whose = f"the target of {record.kind} plugin {record.name!r} from {record.provider}"
    try:
        obj = importlib.import_module(module_name)
    except Exception as exc:
        raise PluginLoadError(
            f"cannot import {record.target!r}, {whose}: {_import_failure(module_name, exc)}"
        ) from exc
    where = module_name
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except Exception as exc:
            public: list[str] = []
            with contextlib.suppress(Exception):  # a module's own __dir__ may fail too
                public = [n for n in dir(obj) if not n.startswith("_")]
            raise PluginLoadError(
                f"cannot import {record.target!r}, {whose}: {where} has no attribute "
                f"{part!r}{did_you_mean(part, public) or '.'} The record's target is "
                f"misspelt: correct it in {record.distribution or 'its'} registration"
            ) from exc
        where = f"{where}.{part}"
    if not callable(obj):
        raise PluginLoadError(f"target {record.target!r} of plugin {record.name!r} is not callable")
    return obj


def check_fixed(
    record: PluginInfo,
    from_name: Mapping[str, str],
    overrides: Mapping[str, Any],
    same_kind: Callable[[], Iterable[PluginInfo]],
) -> None:
    """An override may not contradict what the name says: a parameter the name
    fills (``bitsandbytes-{mode}``), or a default whose value is the name itself or
    one it provides (``bf16-mixed`` with ``precision="bf16-mixed"``)."""
    asked = record.concrete_name(from_name) or record.name
    said = {normalize_name(asked), *map(normalize_name, record.provides)}
    fixed = dict(from_name)
    for key, value in record.parameters.items():
        if isinstance(value, str) and normalize_name(value) in said:
            fixed.setdefault(key, value)
    for key, value in overrides.items():
        if key not in fixed or str(value) == str(fixed[key]):
            continue
        wanted = {**from_name, key: str(value)}
        instead = next(
            (e.name for e in record.expansions(aliases=False) if dict(e.parameters) == wanted),
            None,
        )
        if instead is None:
            instead = next(
                (
                    r.name
                    for r in same_kind()
                    if normalize_name(r.name) == normalize_name(str(value))
                ),
                None,
            )
        raise ConfigurationError(
            f"{key}={value!r} contradicts the name {asked!r}, which means "
            f"{key}={fixed[key]!r}"
            + (f"; load {instead!r} instead" if instead else "; drop the override"),
            subject="parameter",
        )


def _import_failure(module_name: str, exc: Exception) -> str:
    """Why ``import module_name`` failed, and the way out.

    A module of the target's own package that does not exist is a misspelt
    target (suggest the package's real modules); a missing other module is a
    missing dependency; anything else is the module failing as it imports.
    """
    missing = getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None
    if missing and (module_name == missing or module_name.startswith(missing + ".")):
        parent, _, leaf = missing.rpartition(".")
        siblings: list[str] = []
        if parent:
            import pkgutil

            with contextlib.suppress(Exception):
                package = importlib.import_module(parent)
                siblings = [m.name for m in pkgutil.iter_modules(getattr(package, "__path__", []))]
        hint = did_you_mean(leaf, siblings) if siblings else ""
        return (
            f"module {missing!r} does not exist{hint or '.'} The record's target is misspelt, "
            "or the package is installed incompletely: correct the target, or reinstall it"
        )
    if missing:
        return (
            f"it imports {missing!r}, which is not installed: install it (and declare it in "
            "the record's requires)"
        )
    return f"{describe(exc)}. Importing the module failed: reinstall the providing package"


def _check_parameters(record: PluginInfo, factory: Any, params: Mapping[str, Any]) -> None:
    import inspect  # 5 ms to import, for a check only loading needs

    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return
    accepted = signature.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted):
        return
    names = [p.name for p in accepted if p.kind not in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY)]
    unknown = [k for k in params if k not in names]
    if unknown:
        raise PluginLoadError(
            f"{record.kind} plugin {record.name!r} takes no parameter "
            + join([repr(k) for k in unknown], "or")
            + (did_you_mean(unknown[0], names) or ".")
            + f" It accepts: {', '.join(names) or 'nothing'}",
            stage="parameters",
        )
