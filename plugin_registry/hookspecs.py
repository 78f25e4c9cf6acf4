"""The contract between the registry and a plugin package.

A plugin package points an entry point in the ``plugin_registry`` group at a
light *registration module* (or object) whose functions are marked with
:data:`hookimpl` and named after the specs below::

    # pyproject.toml
    [project.entry-points.plugin_registry]
    acme = "acme_plugins.registration"

    # acme_plugins/registration.py  -- imports neither torch nor acme's plugins
    from plugin_registry import PluginInfo, hookimpl

    @hookimpl
    def plugin_registry_precision_plugins():
        return [PluginInfo(name="acme-fp8", kind="precision",
                           target="acme_plugins.fp8:FP8Precision")]

Rules every implementation follows, because the registry caches what they
return on disk and serves it without importing the module again:

* return a list of :class:`~plugin_registry.PluginInfo` of the hook's kind;
* return the same records for the same installed files: no reading of the
  environment, the hardware or the time (the resolver does that later);
* import nothing heavy: no torch, no plugin library, no plugin target.
  ``plugin-registry doctor`` reports a registration module that does.

A hook implementation that raises or returns anything else marks its package
as broken in listings; the other packages are unaffected.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from plugin_registry.machine import Device
    from plugin_registry.records import PluginInfo

__all__ = ["ENTRY_POINT_GROUP", "HOOK_FOR_KIND", "PROJECT_NAME", "hookimpl", "hookspec"]

from plugin_registry.kinds import SPECS
from plugin_registry.records import ENTRY_POINT_GROUP

PROJECT_NAME = "plugin_registry"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def plugin_registry_precision_plugins() -> Sequence[PluginInfo]:  # type: ignore[empty-body]
    """Declare the precision plugins this package provides.

    Called once per discovery (its result is cached on disk); each record's
    ``kind`` is ``"precision"`` and its ``target`` builds a
    ``plugin_registry.kinds.Precision`` (the interface of Lightning Fabric's
    ``Precision``: module conversion, autocast contexts, backward and
    optimizer step).
    """


@hookspec
def plugin_registry_checkpoint_io_plugins() -> Sequence[PluginInfo]:  # type: ignore[empty-body]
    """Declare the checkpoint IO plugins this package provides.

    Each record's ``kind`` is ``"checkpoint_io"`` and its ``target`` builds a
    ``plugin_registry.kinds.CheckpointIO`` (``save_checkpoint``,
    ``load_checkpoint``, ``remove_checkpoint``, ``teardown``).
    """


@hookspec
def plugin_registry_cluster_environment_plugins() -> Sequence[PluginInfo]:  # type: ignore[empty-body]
    """Declare the cluster environments this package provides.

    Each record's ``kind`` is ``"cluster_environment"`` and its ``target``
    builds a ``plugin_registry.kinds.ClusterEnvironment`` (ranks, world size,
    main address and port, read from the launcher's environment).
    """


@hookspec
def plugin_registry_detect_hardware() -> Sequence[Device]:  # type: ignore[empty-body]
    """Report the accelerator devices this package knows how to find.

    Unlike the record hooks, this one runs when the resolver asks for the
    hardware (once per process, never cached on disk), so it may import the
    accelerator's runtime -- inside the function, not at module level. Return
    one :class:`plugin_registry.machine.Device` per device, with the
    ``accelerator`` name your plugins list in ``accelerators`` and the
    properties their ``constraints`` test (``{"generation": "3"}``); return
    an empty list when there is none. An implementation that raises is
    reported in ``Hardware.problems`` and the others still count.
    """


#: The hook of each kind, in the order listings show the kinds.
HOOK_FOR_KIND: dict[str, str] = {s.name: s.hook for s in SPECS}
