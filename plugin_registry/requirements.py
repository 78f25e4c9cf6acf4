"""Requirement checks against installed metadata, never by importing a library."""

from __future__ import annotations

import dataclasses
import functools
import shlex
from collections.abc import Iterable

import importlib_metadata
from packaging.markers import InvalidMarker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from plugin_registry.records import PluginInfo


@functools.cache
def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None. Cached per process."""
    from plugin_registry.discovery import name_and_version

    for dist in importlib_metadata.distributions(name=distribution):
        return name_and_version(dist, getattr(dist, "_path", None))[1]
    return None


def unmet(requires: tuple[str, ...], install_hint: str = "") -> str:
    """Why ``requires`` is not met here, with the install command; '' when met."""
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
        found = installed_version(req.name)
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

    Versions are remembered for the process: call ``installed_version.cache_clear()``
    before a discovery that must see installs made since the last one.
    """
    out: list[PluginInfo] = []
    for record in records:
        reason = unmet(record.requires, record.install_hint)
        out.append(dataclasses.replace(record, available=not reason, unavailable_reason=reason))
    return out
