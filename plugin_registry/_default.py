"""The registry behind the module-level functions of ``plugin_registry``.

A module of its own in the core, so that nothing inside the package imports the
package root (no cycle through ``plugin_registry/__init__``), and so that
``import plugin_registry`` stays light: the Registry is imported on first use.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plugin_registry.registry import Registry

_default: Registry | None = None
_default_lock = threading.Lock()


def default_registry() -> Registry:
    """The registry behind the module-level functions, built on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                from plugin_registry.registry import Registry

                _default = Registry()
    return _default


def set_default_registry(registry: Registry | None) -> None:
    """Replace the default registry (None: rebuild it from the environment)."""
    global _default
    _default = registry
