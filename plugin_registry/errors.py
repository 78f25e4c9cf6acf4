"""Every error and warning plugin_registry raises; each message says the way out.

All are declared here (other modules re-export the ones users meet there), so
a caller catches by type and reads structured fields (``.name``, ``.kind``,
``.providers``, ``.suggestions`` on lookup errors; ``.path`` on checkpoint
errors; ``.stage`` on load errors) instead of matching message text.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable

try:  # the class pickle re-exports, without importing pickle on the core's path
    from _pickle import UnpicklingError
except ImportError:  # pragma: no cover - Pythons without the C accelerator
    from pickle import UnpicklingError


class PluginRegistryError(Exception):
    """Base of every error raised by plugin_registry."""


class WholeMessage:
    """For errors that are also a KeyError or an OSError: their ``str()`` would quote
    the message as a key, or format it as (errno, strerror); the message is whole."""

    args: tuple[object, ...]

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


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
    """Importing or building the plugin failed; the cause is chained.

    ``stage`` tells which: ``"import"`` (the target could not be imported or is
    not callable), ``"build"`` (calling it raised or returned the wrong type),
    ``"parameters"`` (it takes no such parameter), ``"registration"`` (the
    package that registers it is broken).
    """

    def __init__(self, message: str, *, stage: str = "import", **fields: object) -> None:
        super().__init__(message, **fields)  # type: ignore[arg-type]
        self.stage = stage


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


class ParameterConflictError(PluginRegistryError, ValueError):
    """An override contradicts a parameter the plugin's name fixes
    (``load("bitsandbytes-nf4", mode="int8")``); the message names the plugin to load instead."""


class PluginRegistryWarning(UserWarning):
    """Base of every warning plugin_registry emits."""


class PluginWarning(PluginRegistryWarning):
    """A broken or conflicting plugin package; emitted once per process."""


class CacheWarning(PluginRegistryWarning):
    """The record cache could not be read, trusted or written (listing then works without it)."""


class SkippedPluginWarning(PluginRegistryWarning):
    """``check_package`` could not import a plugin because its requirements are missing here."""


class ResolutionWarning(PluginRegistryWarning):
    """The resolver changed a request the way Lightning does (16-mixed on CPU)."""


class CheckpointWarning(PluginRegistryWarning):
    """A checkpoint loaded, but something beside it needs attention (an unfinished save)."""


class ResolutionError(PluginRegistryError, ValueError):
    """No plugin can fill a slot, or an explicit choice cannot work; says why and what would."""


class InvalidSettingError(PluginRegistryError, ValueError):
    """A setting the resolver cannot read; the message lists what it accepts."""


class LockMismatchError(PluginRegistryError):
    """A lock (or another rank) disagrees with this resolution; the message lists how."""


class ScaffoldError(PluginRegistryError, ValueError):
    """A package name the template cannot use, or a destination that exists."""


class ClusterEnvironmentError(PluginRegistryError, RuntimeError):
    """The launcher's environment is missing or contradicts itself; the message names
    the variable, its value and what sets it."""


class MissingVariableError(WholeMessage, ClusterEnvironmentError, KeyError):
    """A variable the launcher sets is not set (where Lightning's ``os.environ[...]``
    raises KeyError, so ``except KeyError`` still catches it)."""


class InvalidVariableError(ClusterEnvironmentError, ValueError):
    """A launcher variable, or a file it names, that cannot be read (where Lightning's
    ``int(...)`` or its LSF checks raise ValueError)."""


class HostFileNotFoundError(WholeMessage, InvalidVariableError, FileNotFoundError):
    """The host or rank file a launcher variable names does not exist (Lightning's
    ``open()`` raises FileNotFoundError there)."""


class SettingsMismatchError(ClusterEnvironmentError, ValueError):
    """``devices``/``num_nodes`` contradict what the launcher started (Lightning's
    ``validate_settings`` raises ValueError)."""


class CheckpointError(PluginRegistryError):
    """A checkpoint could not be saved or loaded; the message names the path and the cause."""

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)


class CheckpointNotFoundError(WholeMessage, CheckpointError, FileNotFoundError):
    """Nothing at the checkpoint path (Lightning's ``TorchCheckpointIO`` raises
    FileNotFoundError there, so ``except FileNotFoundError`` still catches it)."""

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message, path)
        self.errno, self.strerror, self.filename = errno.ENOENT, message, self.path


class IncompleteCheckpointError(CheckpointNotFoundError):
    """A save to the path began but never committed: there is no checkpoint there yet
    (a ``FileNotFoundError``, so code that starts fresh when none exists still does)."""


class UnreadableCheckpointError(CheckpointError, RuntimeError):
    """The file is not a checkpoint this plugin can read: torn, damaged, another format,
    or saved on a device this machine lacks (torch.load raises RuntimeError there)."""


class UnpicklableCheckpointError(UnreadableCheckpointError, UnpicklingError):
    """Unreadable, and torch's unpickler is what said so (torch.load raises
    ``pickle.UnpicklingError`` there: a file that is no checkpoint at all)."""


class WeightsOnlyRefusedError(CheckpointError, UnpicklingError):
    """A ``weights_only`` load met an object it does not allow (torch raises
    ``pickle.UnpicklingError`` there); the message says how to allow it."""


class UserFileError(PluginRegistryError, ValueError):
    """A file the user passed (lock, hardware record, ``[tool.plugin-registry]``) is missing,
    unreadable or malformed; the one-line message names the file and the field."""


class HardwareFileError(UserFileError):
    """A hardware record file that cannot be read; the message says which field."""


class PreferencesError(UserFileError):
    """A malformed priority or preference; the message names where it was set."""


class LockFileError(UserFileError):
    """A lock file that cannot be read or written, or does not match the lock format
    (a file problem, a ValueError; :class:`LockMismatchError` is a machine that differs)."""
