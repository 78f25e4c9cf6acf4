"""Requirement checks against installed metadata, never by importing a library."""

from __future__ import annotations

import dataclasses
import functools
import re
import shlex
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from plugin_registry._distributions import first_of_each
from plugin_registry.names import normalize_distribution
from plugin_registry.records import PluginInfo

#: What a version specifier is made of; anything else goes to packaging to be judged.
_SPECIFIER_CHARS = frozenset(
    " \t<>=!~.*,+-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
# name [extras] specifier, without an environment marker: the form plugin records
# use. Parsed here because packaging.requirements pulls in packaging.markers, a
# large share of resolve()'s time; a marker sends the text to packaging.
_SIMPLE_REQUIREMENT = re.compile(
    r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[[^\]]*\])?\s*\(?([^;()]*)\)?\s*$"
)


class Req(NamedTuple):
    """A parsed requirement: distribution name, version specifier, optional marker."""

    name: str
    specifier: Any  # packaging.specifiers.SpecifierSet
    marker: Any  # packaging.markers.Marker or None
    text: str

    def __str__(self) -> str:
        return self.text


@functools.cache
def parse_requirement(text: str) -> Req:
    """``bitsandbytes>=0.45`` -> Req; raises ValueError (with the reason) when malformed."""
    from packaging.specifiers import SpecifierSet

    match = _SIMPLE_REQUIREMENT.match(text)
    if match is not None:
        return Req(match.group(1), SpecifierSet(match.group(2).strip()), None, text.strip())
    from packaging.requirements import Requirement

    req = Requirement(text)
    return Req(req.name, req.specifier, req.marker, str(req))


def requirement_name(text: str) -> str:
    """The distribution a requirement names (without parsing its specifier)."""
    match = _SIMPLE_REQUIREMENT.match(text)
    return match.group(1) if match is not None else parse_requirement(text).name


@functools.cache
def installed_versions() -> dict[str, str]:
    """Every installed distribution's version by normalised name; one scan per process.

    From the one dist-info scanner (:mod:`plugin_registry._distributions`), first
    entry winning as for imports. Not importlib-metadata's ``distributions()``:
    its zip support (zipp) costs more to import than the whole scan here.
    """
    return {d.name: d.version for d in first_of_each()}


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None (see :func:`installed_versions`)."""
    return installed_versions().get(normalize_distribution(distribution))


def forget_versions() -> None:
    """Scan again on the next question: installs since the last one become visible."""
    installed_versions.cache_clear()


class Unmet(NamedTuple):
    """What a record's requirements lack: each reason, in full and short, and the fix."""

    reasons: tuple[str, ...] = ()
    short: tuple[str, ...] = ()
    fix: str = ""

    def __str__(self) -> str:
        if not self.reasons:
            return ""
        return "; ".join(self.reasons) + (f" (to fix: {self.fix})" if self.fix else "")

    def status(self) -> str:
        """For a table cell: ``met``, ``missing: deepspeed``, ``needs torch>=2.9``."""
        return ", ".join(self.short) if self.short else "met"


def check(
    requires: tuple[str, ...],
    install_hint: str = "",
    version_of: Callable[[str], str | None] = installed_version,
    recorded: Callable[[str], bool] | None = None,
) -> Unmet:
    """What of ``requires`` is not met here (or per ``version_of``), with the install command.

    ``recorded`` says whether a hardware record (``version_of`` reads it) lists a library
    at all: one it does not list is "not in the hardware record", not "not installed".
    """
    reasons: list[str] = []
    short: list[str] = []
    missing: list[str] = []

    def absent(name: str, shown: str) -> None:
        if recorded is not None and not recorded(name):
            reasons.append(
                f"{name} is not in the hardware record (resolve --libraries here judges "
                "the libraries installed on this machine instead)"
            )
            short.append(f"{name} is not in the hardware record")
        else:
            reasons.append(f"{name} is not installed")
            short.append(f"missing: {name}")
            missing.append(shown)

    for text in requires:
        simple = _SIMPLE_REQUIREMENT.match(text)
        if (
            simple is not None
            and set(simple.group(2)) <= _SPECIFIER_CHARS
            and version_of(simple.group(1)) is None
        ):
            # Nothing installed to compare: no specifier to parse (packaging stays unimported).
            absent(simple.group(1), text.strip())
            continue
        try:
            req = parse_requirement(text)
        except ValueError as exc:
            reasons.append(f"requirement {text!r} is malformed ({exc})")
            short.append("malformed requirement")
            continue
        if req.marker is not None and not req.marker.evaluate():
            reasons.append(f"{req} does not apply to this platform")
            short.append("not for this platform")
            continue
        found = version_of(req.name)
        if found is None:
            absent(req.name, str(req))
            continue
        from packaging.version import InvalidVersion, Version

        try:
            ok = req.specifier.contains(Version(found), prereleases=True)
        except InvalidVersion:
            ok = False
        if not ok:
            reasons.append(f"{req.name} {found} is installed but {req} is required")
            short.append(f"needs {req.name}{req.specifier}")
            missing.append(str(req))
    if not reasons:
        return Unmet()
    hint = install_hint or (
        "pip install " + " ".join(shlex.quote(m) for m in missing) if missing else ""
    )
    return Unmet(tuple(reasons), tuple(short), hint)


def unmet(
    requires: tuple[str, ...],
    install_hint: str = "",
    version_of: Callable[[str], str | None] = installed_version,
) -> str:
    """Why ``requires`` is not met, with the install command; '' when met.

    ``version_of`` says what is installed: this machine's metadata by default,
    or another machine's hardware record (:meth:`Hardware.version`).
    """
    return str(check(requires, install_hint, version_of))


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
