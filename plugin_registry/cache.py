"""The on-disk cache of discovery results, and when to trust it.

stevedore keys its cache on the ``sys.path`` and the mtime of every dist-info
it found, so a warm lookup still stats every installed distribution. Here the
key is cheaper and at least as strict:

* the file name hashes what decides *where* distributions are looked for:
  the interpreter, ``sys.path`` and the meta-path finders;
* inside, the mtime of every ``sys.path`` entry. Installing, upgrading or
  uninstalling a distribution creates or removes a ``*.dist-info`` entry in
  its directory, which changes that directory's mtime, so one ``stat`` per
  ``sys.path`` entry (not per distribution) sees every install;
* per plugin package, the mtime of its ``entry_points.txt`` and of the
  registration module's own files, so an edit in an editable install is seen;
* a snapshot whose mtimes lie within :data:`RACY_SECONDS` of the moment it was
  taken is not trusted (git's "racily clean" rule): a change in the same clock
  tick as the stat would otherwise go unnoticed.

Reading the cache needs no importlib-metadata, pluggy or plugin import.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from plugin_registry.errors import CacheWarning

FORMAT = 3
RACY_SECONDS = 2.0
ENV_DIR = "PLUGIN_REGISTRY_CACHE_DIR"
ENV_DISABLE = "PLUGIN_REGISTRY_NO_CACHE"

_warned: set[str] = set()


def default_dir() -> Path:
    """``$PLUGIN_REGISTRY_CACHE_DIR`` or the platform's user cache directory."""
    override = os.environ.get(ENV_DIR)
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_cache_dir("plugin-registry", appauthor=False))


def enabled_by_env() -> bool:
    return os.environ.get(ENV_DISABLE, "").strip().lower() in ("", "0", "false", "no")


def search_path() -> list[str]:
    """``sys.path`` with the current directory spelled out, as it is searched."""
    cwd = os.getcwd()
    return [entry or cwd for entry in sys.path]


def path_snapshot(paths: list[str]) -> list[list[Any]]:
    """``[path, mtime_ns or None]`` for each ``sys.path`` entry, in order."""
    out: list[list[Any]] = []
    for entry in paths:
        try:
            mtime: int | None = os.stat(entry).st_mtime_ns
        except OSError:
            mtime = None
        out.append([entry, mtime])
    return out


def is_trusted(mtimes: Mapping[str, int | None] | list[list[Any]], taken_at: float) -> bool:
    """No mtime is so close to ``taken_at`` that a change could hide in its tick."""
    values = mtimes.values() if isinstance(mtimes, Mapping) else (m for _, m in mtimes)
    limit = (taken_at - RACY_SECONDS) * 1e9
    return all(m is None or m < limit for m in values)


def deps_unchanged(deps: Mapping[str, int | None]) -> bool:
    for path, recorded in deps.items():
        try:
            current: int | None = os.stat(path).st_mtime_ns
        except OSError:
            current = None
        if current != recorded:
            return False
    return True


class RecordCache:
    """One JSON file per interpreter-and-path key under ``directory``."""

    def __init__(self, directory: Path, group: str) -> None:
        self.directory = directory
        self.group = group
        key = json.dumps(
            [
                FORMAT,
                group,
                sys.executable,
                sys.version,
                search_path(),
                [f"{type(f).__module__}.{type(f).__qualname__}" for f in sys.meta_path],
            ]
        )
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        self.path = directory / f"{digest}.json"

    def read(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            _warn_once(f"read:{self.path}", f"ignoring unreadable record cache {self.path}: {exc}")
            return None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return None
        return data

    def write(self, data: dict[str, Any]) -> None:
        """Replace the file atomically, so a concurrent reader sees old or new."""
        data = {"format": FORMAT, "group": self.group, **data}
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.directory)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(data, fh, separators=(",", ":"))
                os.replace(tmp, self.path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            _warn_once(
                f"write:{self.directory}",
                f"cannot write the plugin record cache in {self.directory} ({exc}); every "
                f"listing will rescan. Set {ENV_DIR} to a writable directory, or "
                f"{ENV_DISABLE}=1 to turn the cache off.",
            )


def clear(directory: Path | None = None) -> int:
    """Delete every cache file in ``directory``; return how many were removed."""
    directory = directory or default_dir()
    removed = 0
    if not directory.is_dir():
        return 0
    for file in directory.iterdir():
        if file.suffix == ".json" or file.name.startswith(".tmp-"):
            file.unlink(missing_ok=True)
            removed += 1
    return removed


def now() -> float:
    return time.time()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, CacheWarning, stacklevel=4)
