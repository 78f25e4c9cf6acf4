"""Why a request found no visible plugin: one diagnosis, one error, one suggestion list.

:meth:`Registry.find <plugin_registry.registry.Registry.find>` hands a request that
no visible record answers to :func:`diagnose`, which returns (never raises) the
:class:`~plugin_registry.errors.PluginNotFoundError` that says most, its ``reason``
checked in this order:

1. a package the policy keeps out (autoload narrowed, blocked) serves the name:
   ``"blocked"``, naming the package and why it is not loaded;
2. a broken package is *known* to provide the name (the cache saw its records, its
   entry point or the package itself has that name): ``"broken"``, the package's
   exception chained. A broken package that is not known to provide
   it is only mentioned, so an unrelated misspelling is not blamed on it;
3. the name is a parametrised record's with a value outside its choices
   (``zstd-33`` for ``zstd-{level}``): ``"unknown"``, stating the valid values;
4. otherwise ``"unknown"`` with close names.

The suggestions are computed once: the message says what ``.suggestions`` holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from plugin_registry._text import join
from plugin_registry.errors import PluginLoadError, PluginNotFoundError, PluginRegistryError
from plugin_registry.kinds import Kind
from plugin_registry.names import Spec, meant, normalize_name, suggestions, template_fields
from plugin_registry.records import KINDS, PluginInfo, Problem

if TYPE_CHECKING:
    from plugin_registry._snapshot import Snapshot
    from plugin_registry.registry import Match


def diagnose(
    spec: Spec,
    index: Mapping[tuple[Kind, str], list[Match]],
    records: Iterable[PluginInfo],
    state: Snapshot,
) -> PluginRegistryError:
    """The error for ``spec``, which no visible record of ``index`` answers."""
    blocked = _withheld(spec, state)
    if blocked is not None:
        return blocked
    failed = [p for p in state.problems if p.severity == "error" and not p.names]
    broken = _broken_for(spec.name, state.problems)
    if broken is not None:
        return _broken_error(spec, broken, failed, state)
    other_kinds = [k for k in KINDS if (k, spec.name) in index and k != spec.kind]
    close = _close_names(spec, index)
    outside = _outside_choices(spec, records)
    skipped = _skipped_distributions(state)
    if skipped and not close and not other_kinds and not outside:
        return PluginNotFoundError(
            f"no loaded package provides {spec.kind or 'a'} plugin {str(spec)!r}; installed "
            "packages that are not loaded may: "
            + join([f"{dist} ({why})" for dist, why in sorted(skipped.items())]),
            name=spec.name,
            kind=spec.kind,
            providers=sorted(skipped),
            reason="blocked",
        )
    message = (
        _what_is_missing(spec, index, other_kinds)
        + (f": {outside}" if outside else "")
        + meant(close, otherwise=".")
    )
    if failed:
        message += " Plugin packages that failed to load and may provide it: " + join(
            sorted({f"{p.distribution} ({p.reason})" for p in failed})
        )
        message += "."
    message += " Run 'plugin-registry list' to see every plugin."
    return PluginNotFoundError(message, name=spec.name, kind=spec.kind, suggestions=close)


def _close_names(spec: Spec, index: Mapping[tuple[Kind, str], list[Match]]) -> list[str]:
    """The names of the request's kind that it most likely meant (summaries count)."""
    candidates = {n for (k, n) in index if spec.kind in (None, k)}
    described = {
        n: " ".join(m.record.summary for m in matches)
        for (k, n), matches in index.items()
        if n in candidates
    }
    return suggestions(spec.name, candidates, descriptions=described)


def _what_is_missing(
    spec: Spec, index: Mapping[tuple[Kind, str], list[Match]], other_kinds: Sequence[str]
) -> str:
    """``no precision plugin named 'x'``, and where the name does exist."""
    message = f"no {spec.kind + ' ' if spec.kind else ''}plugin named {str(spec)!r}"
    if spec.kind and other_kinds:
        return message + f" (there is {join([f'{k}/{spec.name}' for k in other_kinds])})"
    if spec.distribution:
        owners = sorted({m.record.qualifier for k in KINDS for m in index.get((k, spec.name), [])})
        if owners:
            return message + f" (it is provided by {join(owners)})"
    return message


def _broken_error(
    spec: Spec, broken: Problem, failed: Sequence[Problem], state: Snapshot
) -> PluginNotFoundError:
    others = sorted({str(p.distribution) for p in failed if p is not broken})
    error = PluginNotFoundError(
        f"plugin {spec.name!r} cannot be used: its package {broken.distribution} is broken: "
        f"{broken.reason}"
        + (f" (also broken: {join(others)})" if others else "")
        + ". Fix or reinstall the package, or run 'plugin-registry doctor'",
        name=spec.name,
        kind=spec.kind,
        providers=[str(broken.distribution)],
        reason="broken",
    )
    error.__cause__ = _live_exception(broken, state)
    return error


def _skipped_distributions(state: Snapshot) -> dict[str, str]:
    return {
        str(ref.distribution): state.skipped[ref.key]
        for ref in state.refs
        if ref.key in state.skipped
    }


def _withheld(spec: Spec, state: Snapshot) -> PluginNotFoundError | None:
    """The policy keeps out a package that serves ``spec`` (known where a listing before,
    the cache, saw its records; or the request names the package)."""
    found: tuple[str, str] | None = None
    for record in state.withheld:
        if spec.kind not in (None, record.kind) or spec.name not in record.names():
            continue
        if spec.distribution not in (None, record.qualifier):
            continue
        key = next((ref.key for ref in state.refs if ref.distribution == record.distribution), "")
        found = (str(record.distribution), state.skipped.get(key, ""))
        break
    skipped = _skipped_distributions(state)
    if found is None and spec.distribution in skipped:
        found = (str(spec.distribution), skipped[str(spec.distribution)])
    if found is None:
        return None
    dist, why = found
    return PluginNotFoundError(
        f"plugin {str(spec)!r} is installed (by {dist}) but its package is not loaded: {why}",
        name=spec.name,
        kind=spec.kind,
        providers=[dist],
        reason="blocked",
    )


def _broken_for(name: str, problems: Iterable[Problem]) -> Problem | None:
    """The error of a broken package known to provide ``name``: the records a listing
    before it broke saw name it, its entry point has that name, or the name is the
    package's own (``wrecked`` or ``wrecked-x`` of ``wrecked-plugins``)."""
    for problem in problems:
        if problem.severity != "error":
            continue
        if problem.names:
            if name in {normalize_name(n) for n in problem.names}:
                return problem
            continue
        stem = re.sub(r"-plugins?$", "", normalize_name(str(problem.distribution or "")))
        if normalize_name(problem.entry_point) == name or (
            stem and (name == stem or name.startswith(f"{stem}-"))
        ):
            return problem
    return None


def _live_exception(problem: Problem, state: Snapshot) -> BaseException:
    """The original exception; re-collected when the problem came from the cache.

    Where the failure does not happen again, the cached traceback stands in
    for it, so the cause is never missing.
    """
    if problem.exception is not None:
        return problem.exception
    from plugin_registry.discovery import collect

    for ref in state.refs:
        if ref.distribution == problem.distribution and ref.name == problem.entry_point:
            fresh = collect(ref)
            for p in fresh.problems:
                if p.reason == problem.reason and p.exception is not None:
                    return p.exception
            found = next((p.exception for p in fresh.problems if p.exception), None)
            if found is not None:
                return found
    return PluginLoadError(
        f"{problem.reason} (recorded by an earlier listing)\n{problem.detail}".rstrip(),
        stage="registration",
    )


def _outside_choices(spec: Spec, records: Iterable[PluginInfo]) -> str:
    """Where ``spec`` has the shape of a parametrised name but a value outside its
    choices: which record, and the values it takes."""
    for record in records:
        if spec.kind not in (None, record.kind) or not record.name_parameters:
            continue
        if spec.distribution not in (None, record.qualifier):
            continue
        for spelled in (record.name, *record.aliases):
            found = _fields_of(spelled, spec.name)
            for field, value in found.items():
                choices = record.name_parameters.get(field, ())
                if value not in {normalize_name(c) for c in choices}:
                    return (
                        f"{record.name!r} takes {field} {describe_choices(choices)}, not {value!r}"
                    )
    return ""


def _fields_of(spelled: str, name: str) -> dict[str, str]:
    """The value of each ``{field}`` of the template ``spelled`` in the normalised
    ``name``, or {} where ``name`` does not have the template's shape."""
    fields: list[str] = []
    pattern = ""
    for part in re.split(r"(\{[^{}]*\})", spelled):
        if part[1:-1] in template_fields(part):
            fields.append(part[1:-1])
            pattern += "(.+)"
        else:
            pattern += re.escape(normalize_name(part)) if part.strip() else re.escape(part)
    found = re.fullmatch(pattern, name) if fields else None
    if found is None:
        return {}
    values: dict[str, str] = {}
    for field, value in zip(fields, found.groups(), strict=True):
        values.setdefault(field, value)
    return values


def describe_choices(choices: Sequence[str]) -> str:
    """``from 1 to 22`` for a run of integers, else ``one of a, b or c``."""
    if choices and all(c.isascii() and c.isdigit() for c in choices):
        numbers = sorted(int(c) for c in choices)
        if numbers == list(range(numbers[0], numbers[-1] + 1)) and len(numbers) > 2:
            return f"from {numbers[0]} to {numbers[-1]}"
    shown = [repr(c) for c in choices[:12]]
    if len(choices) > 12:
        shown.append(f"{len(choices) - 12} more")
    return f"one of {join(shown, 'or')}"
