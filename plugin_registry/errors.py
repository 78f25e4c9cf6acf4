"""The errors and warnings the registry raises; each message says the way out."""

from __future__ import annotations


class PluginRegistryError(Exception):
    """Base of every error raised by plugin_registry."""


class InvalidNameError(PluginRegistryError, ValueError):
    """A request that is not a well-formed ``[kind/][distribution:]name``."""


class PluginNotFoundError(PluginRegistryError, LookupError):
    """No visible plugin answers to the name; the message suggests close names."""


class AmbiguousPluginError(PluginRegistryError, LookupError):
    """A bare name exists in several kinds; the message lists the qualified forms."""


class PluginConflictError(PluginRegistryError, LookupError):
    """Several distributions provide the same name and none is pinned."""


class PluginBlockedError(PluginNotFoundError):
    """The plugin exists but the registry's allow/block lists hide it."""


class PluginUnavailableError(PluginRegistryError):
    """The plugin is installed but its requirements are not met."""


class PluginLoadError(PluginRegistryError, ImportError):
    """Importing or building the plugin failed; the cause is chained."""


class BrokenPluginError(PluginLoadError):
    """The package that registers the plugin is broken; the cause is chained."""


class InvalidRecordError(PluginRegistryError, ValueError):
    """A hook returned something that is not a valid plugin record."""


class PluginWarning(UserWarning):
    """A broken or conflicting plugin package; emitted once per process."""


class CacheWarning(UserWarning):
    """The record cache could not be read or written (it is then rebuilt)."""
