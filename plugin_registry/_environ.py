"""Reading the ``PLUGIN_REGISTRY_*`` variables: one parser per shape, strict.

A switch that cannot be read must not fail open: ``DISABLE_AUTOLOAD=y`` that
left autoload on would load the very code the user meant to keep out. So each
switch takes the usual spellings of true and false and refuses anything else
with an error that names the variable.
"""

from __future__ import annotations

from collections.abc import Mapping

from plugin_registry.errors import ConfigurationError

TRUE = frozenset({"1", "true", "t", "yes", "y", "on", "enable", "enabled"})
FALSE = frozenset({"0", "false", "f", "no", "n", "off", "disable", "disabled", ""})


def flag(environ: Mapping[str, str], name: str) -> bool:
    """The switch ``name``: False when unset or empty; an error for an unknown spelling."""
    raw = environ.get(name)
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ConfigurationError(
        f"{name}={raw!r} is neither true nor false; use one of 1, true, yes, on (or 0, "
        f"false, no, off), or unset {name}",
        subject="environment",
    )


def items(environ: Mapping[str, str], name: str) -> list[str] | None:
    """A comma-separated list; None when unset or blank; an error when it names nothing.

    ``,`` alone is a typo, not an instruction: read as "allow nothing" it would
    hide every plugin, the built-ins too.
    """
    raw = environ.get(name)
    if raw is None or not raw.strip():
        return None
    found = [item.strip() for item in raw.split(",") if item.strip()]
    if not found:
        raise ConfigurationError(
            f"{name}={raw!r} names nothing (only commas and spaces); list entries "
            f"separated by commas, or unset {name}",
            subject="environment",
        )
    return found


def pairs(
    environ: Mapping[str, str],
    name: str,
    example: str,
    shape: str = "key=value",
    subject: str = "environment",
) -> dict[str, str] | None:
    """``key=value,...``; None when unset; a ConfigurationError about ``subject`` for an
    entry without both sides."""
    entries = items(environ, name)
    if entries is None:
        return None
    out: dict[str, str] = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigurationError(
                f"{name} entry {entry!r} is not {shape} with both sides given "
                f"(e.g. {name}={example!r})",
                subject=subject,
            )
        out[key.strip()] = value.strip()
    return out
