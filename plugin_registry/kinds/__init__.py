"""One base class per plugin kind, with the interfaces Lightning users know.

The modules here import torch only inside methods, so a registration module or
a listing never pays for it. :func:`base_class` maps a kind to its class.
"""

from __future__ import annotations

import importlib
from typing import Any

_BASES = {
    "precision": "plugin_registry.kinds.precision:Precision",
    "checkpoint_io": "plugin_registry.kinds.checkpoint_io:CheckpointIO",
    "cluster_environment": "plugin_registry.kinds.cluster_environment:ClusterEnvironment",
}


def base_class(kind: str) -> type[Any] | None:
    """The base class a plugin of ``kind`` must build, or None where none exists yet."""
    module_name, _, attr = _BASES[kind].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return None
    cls: type[Any] = getattr(module, attr)
    return cls


def __getattr__(name: str) -> Any:
    for kind, path in _BASES.items():
        if path.endswith(":" + name):
            cls = base_class(kind)
            if cls is not None:
                return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
