"""Moved to :mod:`plugin_registry.resolver.lock` (data) and
:mod:`plugin_registry.resolver.locking` (resolving against a lock and across ranks);
this name works for one more release."""

from __future__ import annotations

import warnings

from plugin_registry.resolver.lock import *  # noqa: F403
from plugin_registry.resolver.lock import FORMAT, Lock, LockedPlugin
from plugin_registry.resolver.locking import resolve_locked, resolve_on_all_ranks

__all__ = ["FORMAT", "Lock", "LockedPlugin", "resolve_locked", "resolve_on_all_ranks"]

warnings.warn(
    "plugin_registry.lock moved to plugin_registry.resolver (Lock, resolve_on_all_ranks); "
    "import it from there (the old name goes in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
