"""Names that several installed packages provide: the warning each such name gets.

A bare lookup of such a name fails until one provider is chosen
(:meth:`Registry.find <plugin_registry.registry.Registry.find>` says so); listing
warns once per name, here, with the spellings that choose and, where the record
cache remembers it, which package the name meant before the second one arrived.
Imported only when a name has two providers: a warm listing of a clean install
never loads it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from plugin_registry._text import join
from plugin_registry.kinds import Kind
from plugin_registry.names import normalize_kind
from plugin_registry.records import IN_PROCESS, Problem

#: The distribution that ships the built-in plugins.
BUILTIN = "plugin-registry"


def problems(
    shared: Mapping[str, set[str]],
    former: Mapping[str, str],
    pinned: Callable[[Kind, str], bool],
) -> list[Problem]:
    """One warning per ``kind/name`` of ``shared`` (-> its providers) that no pin decides,
    one per group of providers."""
    out: list[Problem] = []
    seen: set[tuple[str, frozenset[str]]] = set()
    for key, providers in shared.items():
        kind_text, name = key.split("/", 1)
        kind = normalize_kind(kind_text)
        group = (kind, frozenset(providers))
        if pinned(kind, name) or group in seen:
            continue
        seen.add(group)
        out.append(
            Problem(
                distribution=None,
                entry_point=f"{kind}/{name}",
                reason=(
                    f"{kind} name {name!r} is registered by {join(sorted(providers))}; "
                    f"a bare lookup fails until one is chosen: use "
                    f"{join(sorted(f'{p}:{name}' for p in providers), 'or')}, "
                    f"or pin one with PLUGIN_REGISTRY_PIN={name}=<distribution>."
                    + meant_before(former, kind, name)
                    + _builtin_advice(name, providers)
                ),
                severity="warning",
                names=(name,),
                kind=kind,
            )
        )
    return out


def meant_before(former: Mapping[str, str], kind: str, name: str) -> str:
    """What the name meant before it became ambiguous, where the cache remembers."""
    before = former.get(f"{kind}/{name}")
    if before is None:
        return ""
    return (
        f" Until another package came to provide it too, {name!r} was {before}'s: "
        f"'{before}:{name}' (or PLUGIN_REGISTRY_PIN={name}={before}) keeps that."
    )


def _builtin_advice(name: str, providers: Iterable[str]) -> str:
    """A third party's name that the core also ships: the package should rename."""
    others = sorted(p for p in providers if p not in (BUILTIN, IN_PROCESS))
    if BUILTIN not in providers or not others:
        return ""
    return (
        f" {name!r} is a built-in name of plugin-registry: {join(others)} should give its "
        "plugin a name of its own (its package's prefix, e.g. 'acme-"
        f"{name}'; see docs/plugin-authors.md, 'Names')"
    )
