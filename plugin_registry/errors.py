"""The errors and warnings the registry raises; each message says the way out."""

from __future__ import annotations

from collections.abc import Iterable


class PluginRegistryError(Exception):
    """Base of every error raised by plugin_registry."""


class _LookupFailure(PluginRegistryError):
    """A request that found no single plugin; fields say what, for callers and tests."""

    def __init__(
        self,
        message: str,
        *,
        name: str | None = None,
        kind: str | None = None,
        providers: Iterable[str] = (),
        suggestions: Iterable[str] = (),
    ) -> None:
        super().__init__(message)
        self.name = name
        self.kind = kind
        self.providers = tuple(providers)
        self.suggestions = tuple(suggestions)


class InvalidNameError(PluginRegistryError, ValueError):
    """A request that is not a well-formed ``[kind/][distribution:]name``."""


class PluginNotFoundError(_LookupFailure, LookupError):
    """No visible plugin answers to the name; the message suggests close names."""


class AmbiguousPluginError(_LookupFailure, LookupError):
    """A bare name exists in several kinds; the message lists the qualified forms."""


class PluginConflictError(_LookupFailure, LookupError):
    """Several distributions provide the same name and none is pinned."""


class PluginBlockedError(PluginNotFoundError):
    """The plugin exists but the registry's allow/block lists hide it."""


class PluginUnavailableError(PluginRegistryError):
    """The plugin is installed but its requirements are not met."""


class PluginLoadError(PluginRegistryError, ImportError):
    """Importing or building the plugin failed; the cause is chained."""


class BrokenPluginError(PluginLoadError, PluginNotFoundError):
    """The package that registers (or may register) the plugin is broken.

    The original exception is chained as ``__cause__``, also when the listing
    came from the cache. It is a :class:`PluginNotFoundError` too: the name is
    not served, and code that handles a missing plugin handles this one.
    """


class InvalidEnvironmentError(PluginRegistryError, ValueError):
    """A ``PLUGIN_REGISTRY_*`` variable that cannot be read; the message names it."""


class InvalidRecordError(PluginRegistryError, ValueError):
    """A hook returned something that is not a valid plugin record."""


class PluginWarning(UserWarning):
    """A broken or conflicting plugin package; emitted once per process."""


class CacheWarning(UserWarning):
    """The record cache could not be read or written (it is then rebuilt)."""


class UserFileError(PluginRegistryError, ValueError):
    """A file the user passed (lock, hardware record, ``[tool.plugin-registry]``) is missing,
    unreadable or malformed; the one-line message names the file and the field."""
