"""plugin-registry: entry-point discovery of PyTorch training plugins.

::

    import plugin_registry as pr

    pr.list_plugins("precision")          # records; nothing imported
    pr.get("bitsandbytes-nf4")            # one record
    pr.load("bitsandbytes-nf4")           # the plugin instance
    pr.load_plugins(["slurm", "precision/xla"])
    pr.load(pr.detect_environment())      # a record loads as well as a name
    pr.resolve(precision="bf16-mixed")    # the resolver: plugins for this machine

The module-level functions use one default :class:`Registry`, configured from
the environment; a host program may build its own. Importing this package
imports neither torch, pluggy, importlib-metadata nor any plugin.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal, overload

from plugin_registry._default import default_registry, set_default_registry
from plugin_registry.errors import (
    CheckpointError,
    ClusterEnvironmentError,
    ConfigurationError,
    PluginLoadError,
    PluginNotFoundError,
    PluginRegistryError,
    PluginRegistryWarning,
    PluginUnavailableError,
    PluginWarning,
    ResolutionError,
)
from plugin_registry.records import KINDS, Kind, PluginInfo, Problem

if TYPE_CHECKING:
    from plugin_registry.hookspecs import hookimpl, hookspec
    from plugin_registry.kinds.checkpoint_io import CheckpointIO
    from plugin_registry.kinds.cluster_environment import ClusterEnvironment
    from plugin_registry.kinds.precision import Precision
    from plugin_registry.registry import Registry
    from plugin_registry.resolver.choosing import resolve
    from plugin_registry.resolver.detection import detect_environment, detection_order
    from plugin_registry.resolver.resolution import Resolution

    __version__: str

__all__ = [
    "KINDS",
    "CheckpointError",
    "ClusterEnvironmentError",
    "ConfigurationError",
    "Kind",
    "PluginInfo",
    "PluginLoadError",
    "PluginNotFoundError",
    "PluginRegistryError",
    "PluginRegistryWarning",
    "PluginUnavailableError",
    "PluginWarning",
    "Problem",
    "Registry",
    "ResolutionError",
    "default_registry",
    "detect_environment",
    "detection_order",
    "get",
    "hookimpl",
    "hookspec",
    "list_plugins",
    "load",
    "load_plugins",
    "problems",
    "register",
    "resolve",
    "Resolution",
    "set_default_registry",
    "unregister",
]


def list_plugins(kind: str | None = None) -> list[PluginInfo]:
    """Every visible plugin record, ordered by kind, name and provider."""
    return default_registry().list_plugins(kind)


def get(name: str, kind: str | None = None) -> PluginInfo:
    """The record ``name`` stands for (``[kind/][distribution:]name``)."""
    return default_registry().get(name, kind)


@overload
def load(name: str | PluginInfo, /, kind: Literal["precision"], **overrides: Any) -> Precision: ...
@overload
def load(
    name: str | PluginInfo, /, kind: Literal["checkpoint_io"], **overrides: Any
) -> CheckpointIO: ...
@overload
def load(
    name: str | PluginInfo, /, kind: Literal["cluster_environment"], **overrides: Any
) -> ClusterEnvironment: ...
@overload
def load(name: str | PluginInfo, /, kind: str | None = None, **overrides: Any) -> Any: ...
def load(name: str | PluginInfo, /, kind: str | None = None, **overrides: Any) -> Any:
    """Import and build the plugin ``name`` (a name or a record); ``overrides`` win over
    its defaults. ``name`` is positional-only, so a plugin parameter called ``name``
    can be overridden too."""
    return default_registry().load(name, kind, **overrides)


def load_plugins(plugins: Iterable[Any]) -> list[Any]:
    """Build a ``plugins=[...]`` list: names are loaded, instances pass through."""
    return default_registry().load_plugins(plugins)


def register(plugin: Any, /, **fields: Any) -> PluginInfo:
    """Register an unpackaged plugin in the default registry."""
    return default_registry().register(plugin, **fields)


def unregister(name: str, kind: str) -> PluginInfo:
    """Remove a plugin :func:`register` added; the exact inverse of it."""
    return default_registry().unregister(name, kind)


def problems() -> list[Problem]:
    """Broken plugin packages and name conflicts in the default registry."""
    return default_registry().problems()


def __getattr__(name: str) -> Any:
    # Lazy so that `import plugin_registry` stays free of pluggy and friends.
    if name in ("hookimpl", "hookspec"):
        from plugin_registry import hookspecs

        return getattr(hookspecs, name)
    if name in ("detect_environment", "detection_order"):
        from plugin_registry.resolver import detection

        return getattr(detection, name)
    if name == "Registry":
        from plugin_registry.registry import Registry

        return Registry
    if name == "resolve":
        from plugin_registry.resolver.choosing import resolve

        return resolve
    if name == "Resolution":
        from plugin_registry.resolver.resolution import Resolution

        return Resolution
    if name == "__version__":
        # From the installed metadata, read only when asked (import stays light).
        from importlib.metadata import distributions

        # The first copy on the path that has metadata: an unpacked sdist leaves an
        # egg-info without any in the working directory, and version() read that one.
        for dist in distributions(name="plugin-registry"):
            try:
                found = dist.version
            except (OSError, TypeError):  # no metadata file (TypeError on Python 3.10)
                continue
            if found:
                return str(found)
        return "0+unknown"  # a source tree that is not installed
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
