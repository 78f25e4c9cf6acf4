"""Requirement checks against installed metadata, never by importing a library."""

from __future__ import annotations

import dataclasses
import functools
import shlex
from collections.abc import Callable, Iterable

import importlib_metadata
from packaging.markers import InvalidMarker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from plugin_registry.names import normalize_distribution
from plugin_registry.records import PluginInfo


@functools.cache
def installed_versions() -> dict[str, str]:
    """Every installed distribution's version by normalised name; one scan per process.

    The first distribution on ``sys.path`` wins, as for imports. Versions come
    from the ``name-version.dist-info`` directory names where they can.
    """
    from plugin_registry.discovery import name_and_version

    found: dict[str, str] = {}
    for dist in importlib_metadata.distributions():
        name, version = name_and_version(dist, getattr(dist, "_path", None))
        found.setdefault(name, version)
    return found


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None (see :func:`installed_versions`)."""
    return installed_versions().get(normalize_distribution(distribution))


def forget_versions() -> None:
    """Scan again on the next question: installs since the last one become visible."""
    installed_versions.cache_clear()


def unmet(
    requires: tuple[str, ...],
    install_hint: str = "",
    version_of: Callable[[str], str | None] = installed_version,
) -> str:
    """Why ``requires`` is not met, with the install command; '' when met.

    ``version_of`` says what is installed: this machine's metadata by default,
    or another machine's hardware record (:meth:`Hardware.version`).
    """
    reasons: list[str] = []
    missing: list[str] = []
    for text in requires:
        try:
            req = Requirement(text)
        except (InvalidRequirement, InvalidMarker) as exc:
            reasons.append(f"requirement {text!r} is malformed ({exc})")
            continue
        if req.marker is not None and not req.marker.evaluate():
            reasons.append(f"{req} does not apply to this platform")
            continue
        found = version_of(req.name)
        if found is None:
            reasons.append(f"{req.name} is not installed")
            missing.append(str(req))
            continue
        try:
            ok = req.specifier.contains(Version(found), prereleases=True)
        except InvalidVersion:
            ok = False
        if not ok:
            reasons.append(f"{req.name} {found} is installed but {req} is required")
            missing.append(str(req))
    if not reasons:
        return ""
    hint = install_hint or (
        "pip install " + " ".join(shlex.quote(m) for m in missing) if missing else ""
    )
    return "; ".join(reasons) + (f" (to fix: {hint})" if hint else "")


def with_availability(records: Iterable[PluginInfo]) -> list[PluginInfo]:
    """Records with ``available`` and its reason computed from installed metadata.

    Versions are remembered for the process: call :func:`forget_versions`
    before a discovery that must see installs made since the last one.
    """
    out: list[PluginInfo] = []
    for record in records:
        reason = unmet(record.requires, record.install_hint)
        out.append(dataclasses.replace(record, available=not reason, unavailable_reason=reason))
    return out
