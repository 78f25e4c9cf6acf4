"""Hook implementations declaring the built-in plugins.

Imported on a cache miss by every listing, so it imports nothing but the core's
records: no torch, no plugin module.
"""

from __future__ import annotations

from plugin_registry import PluginInfo, hookimpl


@hookimpl
def plugin_registry_precision_plugins() -> list[PluginInfo]:
    return []


@hookimpl
def plugin_registry_checkpoint_io_plugins() -> list[PluginInfo]:
    return []


@hookimpl
def plugin_registry_cluster_environment_plugins() -> list[PluginInfo]:
    return []
