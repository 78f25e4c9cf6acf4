"""Reading a launcher's variables, with errors that say which variable and who sets it."""

from __future__ import annotations

import os

from plugin_registry.kinds.cluster_environment import ClusterEnvironmentError


def get(name: str, launcher: str) -> str:
    """The value of ``name``; an error naming the launcher that should have set it."""
    value = os.environ.get(name)
    if value is None:
        raise ClusterEnvironmentError(f"{name} is not set; {launcher}")
    return value


def get_int(name: str, launcher: str, default: int | None = None) -> int:
    """``name`` as an integer (``default`` when unset and a default is given)."""
    value = os.environ.get(name)
    if value is None:
        if default is not None:
            return default
        raise ClusterEnvironmentError(f"{name} is not set; {launcher}")
    try:
        return int(value.strip())
    except ValueError:
        raise ClusterEnvironmentError(f"{name}={value!r} is not an integer; {launcher}") from None
