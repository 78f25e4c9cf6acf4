"""Every error and warning plugin_registry raises; each message says the way out.

Eight error types and two warnings, each with fields a caller reads instead of
matching message text:

- :class:`PluginRegistryError`, the base of all;
- :class:`ConfigurationError` (a ``ValueError``): a value given to plugin_registry
  cannot be used; ``.subject`` says which kind of value;
- :class:`PluginNotFoundError` (a ``LookupError``): a request found no single plugin;
  ``.name``, ``.kind``, ``.reason``, ``.providers``, ``.suggestions``;
- :class:`PluginLoadError` (an ``ImportError``): importing or building a plugin
  failed; ``.stage``;
- :class:`PluginUnavailableError`: the plugin is installed but its requirements are
  not met here;
- :class:`ResolutionError` (a ``ValueError``): the resolver cannot choose, or a
  lock or another rank disagrees; ``.reason``;
- :class:`ClusterEnvironmentError` (a ``RuntimeError``): the launcher's variables are
  missing or contradict themselves; ``.reason``;
- :class:`CheckpointError`: a checkpoint cannot be saved or loaded; ``.path``,
  ``.reason``;
- :class:`PluginRegistryWarning` and :class:`PluginWarning`.

Where Lightning's own code raises a standard exception (``os.environ[name]``'s
KeyError, ``torch.load``'s RuntimeError or ``pickle.UnpicklingError``, ``open()``'s
FileNotFoundError), the error built with that ``reason`` is also one, as
``OSError(errno.ENOENT, ...)`` is a FileNotFoundError: code written for
Lightning's plugins keeps catching what it caught.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from typing import Any, ClassVar

try:  # the class pickle re-exports, without importing pickle on the core's path
    from _pickle import UnpicklingError
except ImportError:  # pragma: no cover - Pythons without the C accelerator
    from pickle import UnpicklingError

__all__ = [
    "CheckpointError",
    "ClusterEnvironmentError",
    "ConfigurationError",
    "PluginLoadError",
    "PluginNotFoundError",
    "PluginRegistryError",
    "PluginRegistryWarning",
    "PluginUnavailableError",
    "PluginWarning",
    "ResolutionError",
]


class PluginRegistryError(Exception):
    """Base of every error raised by plugin_registry."""


class _ByReason:
    """Builds the variant of the class registered for ``reason`` (the standard
    exception Lightning raises there among its bases), as ``OSError(errno.ENOENT,
    ...)`` builds a FileNotFoundError."""

    _variants: ClassVar[dict[str, type]]
    reason: str
    args: tuple[Any, ...]

    def __new__(cls, *args: Any, reason: str | None = None, **fields: Any) -> Any:
        if reason is not None and "_variants" in vars(cls):  # the public class, not a subclass
            cls = cls._variants.get(reason, cls)
        # The C base whose layout the instance has (an OSError's is not a RuntimeError's).
        solid: Any = OSError if issubclass(cls, OSError) else Exception
        return solid.__new__(cls, *args)

    def _init_args(self) -> tuple[Any, ...]:
        return (str(self.args[0]) if self.args else "",)

    def __reduce__(self) -> tuple[Any, ...]:
        # OSError's own reduce would rebuild a not-found variant from (errno,
        # strerror, filename), which its constructor does not take.
        return (_rebuild, (type(self), self._init_args(), self.reason), dict(self.__dict__))


def _rebuild(cls: type, args: tuple[Any, ...], reason: str) -> BaseException:
    try:
        error: BaseException = cls(*args, reason=reason)
    except TypeError:  # a subclass whose constructor takes other arguments
        error = cls.__new__(cls, *args)  # its state (__dict__) is restored by pickle
        error.args = args[:1]
    return error


class _WholeMessage:
    """For errors that are also a KeyError or an OSError: their ``str()`` would quote
    the message as a key, or format it as (errno, strerror); the message is whole."""

    args: tuple[object, ...]

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigurationError(PluginRegistryError, ValueError):
    """A value given to plugin_registry cannot be used; the message names it and what
    would do.

    ``subject`` says which value: ``"name"`` (a plugin request, an allow/block
    pattern, a pin, a name ``register()`` finds taken), ``"parameter"`` (a load
    override that contradicts the plugin's name), ``"setting"`` (a resolver
    setting), ``"environment"`` (a ``PLUGIN_REGISTRY_*`` variable), ``"record"`` (a
    record a hook returned), ``"preferences"`` (a priority or preference, in
    ``[tool.plugin-registry]`` or the environment), ``"lock"`` or ``"hardware"`` (a
    lock or hardware record file), ``"scaffold"`` (a package name or destination
    the template cannot use).
    """

    def __init__(self, message: str, *, subject: str = "value") -> None:
        super().__init__(message)
        self.subject = subject


class PluginNotFoundError(PluginRegistryError, LookupError):
    """A request that found no single plugin; the message says why and what to write.

    ``reason`` is ``"unknown"`` (no visible plugin has the name; ``.suggestions``
    holds the close names the message lists), ``"ambiguous"`` (the bare name exists
    in several kinds; ``.suggestions`` holds the qualified forms), ``"conflict"``
    (several distributions, ``.providers``, serve the name and none is pinned),
    ``"blocked"`` (the registry's allow/block lists or autoload keep its package
    out) or ``"broken"`` (the package known to provide it is broken; its exception
    is chained as ``__cause__``, also when the listing came from the cache).
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str = "unknown",
        name: str | None = None,
        kind: str | None = None,
        providers: Iterable[str] = (),
        suggestions: Iterable[str] = (),
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.name = name
        self.kind = kind
        self.providers = tuple(providers)
        self.suggestions = tuple(suggestions)


class PluginLoadError(PluginRegistryError, ImportError):
    """Importing or building the plugin failed; the cause is chained.

    ``stage`` tells which: ``"import"`` (the target could not be imported or is
    not callable), ``"build"`` (calling it raised or returned the wrong type),
    ``"parameters"`` (it takes no such parameter), ``"registration"`` (the
    package that registers it is broken).
    """

    def __init__(self, message: str, *, stage: str = "import", name: str | None = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.name = name


class PluginUnavailableError(PluginRegistryError):
    """The plugin is installed but its requirements are not met here (a package, a
    device); the message says which."""


class ResolutionError(PluginRegistryError, ValueError):
    """The resolver cannot give this job its plugins; the message says why and what would.

    ``reason`` is ``"unsatisfiable"`` (no plugin can fill a slot, or an explicit
    choice cannot work here), ``"lock-mismatch"`` (this machine differs from the
    lock being followed) or ``"ranks-disagree"`` (the ranks of a job resolved
    differently, or one is gone).
    """

    def __init__(self, message: str, *, reason: str = "unsatisfiable") -> None:
        super().__init__(message)
        self.reason = reason


class ClusterEnvironmentError(_ByReason, PluginRegistryError, RuntimeError):
    """The launcher's environment is missing or contradicts itself; the message names
    the variable, its value and what sets it.

    ``reason``, and the standard exception Lightning's environments raise there that
    the error also is: ``"missing-variable"`` (a KeyError, as ``os.environ[name]``),
    ``"invalid-variable"`` (a ValueError, as ``int(...)``), ``"missing-file"`` (a
    host or rank file a variable names is not there: a FileNotFoundError and a
    ValueError), ``"settings-mismatch"`` (``devices``/``num_nodes`` contradict what
    the launcher started: a ValueError, as ``validate_settings``), ``"other"``.
    """

    _variants: ClassVar[dict[str, type]] = {}

    def __init__(self, message: str, *, reason: str = "other") -> None:
        super().__init__(message)
        self.reason = reason


class _MissingVariable(_WholeMessage, ClusterEnvironmentError, KeyError):
    pass


class _InvalidVariable(ClusterEnvironmentError, ValueError):
    pass


class _MissingFile(_WholeMessage, ClusterEnvironmentError, FileNotFoundError, ValueError):
    pass


ClusterEnvironmentError._variants.update(
    {
        "missing-variable": _MissingVariable,
        "invalid-variable": _InvalidVariable,
        "settings-mismatch": _InvalidVariable,
        "missing-file": _MissingFile,
    }
)


class CheckpointError(_ByReason, PluginRegistryError):
    """A checkpoint could not be saved or loaded; the message names the path and the cause.

    ``path`` is the checkpoint's; ``reason``, and the standard exception
    Lightning's ``TorchCheckpointIO`` (or ``torch.load``) raises there that the
    error also is:

    - ``"not-found"``: nothing at the path (a FileNotFoundError);
    - ``"incomplete"``: a save to the path began but never committed, so there is
      no checkpoint there yet (a FileNotFoundError: code that starts fresh when
      none exists still does);
    - ``"unreadable"``: not a checkpoint this plugin can read: torn, damaged,
      another format, or saved on a device this machine lacks (a RuntimeError);
    - ``"unpicklable"``: unreadable, and torch's unpickler is what said so (a
      RuntimeError and a ``pickle.UnpicklingError``);
    - ``"refused"``: a ``weights_only`` load met an object it does not allow (a
      ``pickle.UnpicklingError``); the message says how to allow it;
    - ``"failed"``: anything else (a save that could not complete, a directory
      where a file was expected).
    """

    _variants: ClassVar[dict[str, type]] = {}

    def __init__(
        self, message: str, path: str | os.PathLike[str] | None = None, *, reason: str = "failed"
    ) -> None:
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)
        self.reason = reason

    def _init_args(self) -> tuple[Any, ...]:
        return (*super()._init_args(), self.path)


class _CheckpointNotFound(_WholeMessage, CheckpointError, FileNotFoundError):
    def __init__(
        self, message: str, path: str | os.PathLike[str] | None = None, *, reason: str = "not-found"
    ) -> None:
        super().__init__(message, path, reason=reason)
        self.errno, self.strerror, self.filename = errno.ENOENT, message, self.path


class _UnreadableCheckpoint(CheckpointError, RuntimeError):
    pass


class _UnpicklableCheckpoint(CheckpointError, RuntimeError, UnpicklingError):
    pass


class _RefusedCheckpoint(CheckpointError, UnpicklingError):
    pass


CheckpointError._variants.update(
    {
        "not-found": _CheckpointNotFound,
        "incomplete": _CheckpointNotFound,
        "unreadable": _UnreadableCheckpoint,
        "unpicklable": _UnpicklableCheckpoint,
        "refused": _RefusedCheckpoint,
    }
)


class PluginRegistryWarning(UserWarning):
    """Base of every warning plugin_registry emits; used itself for its own notices
    (the record cache could not be used, the resolver changed a request the way
    Lightning does, a checkpoint loaded beside an unfinished save)."""


class PluginWarning(PluginRegistryWarning):
    """A plugin package's problem: broken, conflicting, or (in ``check_package``) not
    importable here; emitted once per process."""
