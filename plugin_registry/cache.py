"""The on-disk cache of discovery results, and when to trust it.

stevedore keys its cache on the ``sys.path`` and the mtime of every dist-info
it found, so a warm lookup still stats every installed distribution. Here the
key is cheaper and at least as strict:

* the file name hashes what decides *where* distributions are looked for:
  the interpreter, ``sys.path`` and the meta-path finders;
* inside, per ``sys.path`` entry, its mtime and the distribution entries in it
  (``*.dist-info``, ``*.egg-info``, ``*.egg-link``, ``*.pth``, each with its
  inode and mtime). Installing, upgrading, reinstalling or uninstalling a
  distribution changes them. When a directory's
  mtime is unchanged (and was not within :data:`RACY_SECONDS` of the snapshot,
  git's "racily clean" rule) one ``stat`` suffices; when it changed -- a busy
  working directory, ``/tmp`` -- the distribution entries are listed again and
  compared, so files written beside the script do not force a rescan;
* the ``entry_points.txt`` of every ``*.egg-info`` directory on the path is
  stat'ed on each start: a legacy ``setup.py develop`` edits it in place,
  which changes no directory;
* per plugin package, the mtime of its ``entry_points.txt`` and of the
  registration module's own files, so an edit in an editable install is seen.

The cache is a file any user who can write its directory could plant, and a
planted record could name any callable as its target. So the directory is
created owner-only (0700) and its files 0600; a directory or file that another
user owns, or that group or others may write, is never read nor written
(a :class:`~plugin_registry.errors.PluginRegistryWarning`; the listing is then built in
memory). A file that is not a regular file, is larger than :data:`MAX_BYTES`,
is not JSON or does not match the schema is a miss. Every record in it passed
validation when it was collected; the file ends with a checksum of its content
(:func:`_seal`), and a file whose checksum does not match (edited by hand or by
another program) has every record validated again, as a fresh one. The cache can
therefore never grant more than the user's own site-packages already could.

Reading the cache needs no importlib-metadata, pluggy or plugin import.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from plugin_registry import _files
from plugin_registry.errors import PluginRegistryWarning
from plugin_registry.records import KINDS, Collected, EntryPointRef, PluginInfo, validate_record

FORMAT = 6
RACY_SECONDS = 2.0
#: A cache file larger than this is not read (a few hundred KiB is usual).
MAX_BYTES = 64 * 1024 * 1024
_DIST_SUFFIXES = (".dist-info", ".egg-info", ".egg-link", ".pth")
ENV_DIR = "PLUGIN_REGISTRY_CACHE_DIR"
ENV_DISABLE = "PLUGIN_REGISTRY_NO_CACHE"
#: The cache's own variables: any other PLUGIN_REGISTRY_* one may be a policy's.
VARIABLES = frozenset({ENV_DIR, ENV_DISABLE})

_warned: set[str] = set()


def _digest(text: str, size: int) -> str:
    """BLAKE2 of ``text``: what the distribution entries of a directory are."""
    try:  # CPython's built-in BLAKE2: hashlib would load OpenSSL (4 ms)
        from _blake2 import blake2b
    except ImportError:  # pragma: no cover - other Pythons
        from hashlib import blake2b
    return blake2b(text.encode("utf-8", "surrogateescape"), digest_size=size).hexdigest()


#: What a directory that holds no distribution is, in place of a digest.
NO_DISTRIBUTIONS = "no-distributions"

#: A Mersenne prime: the cache file's name is its key, as a number, modulo this.
_NAME_MODULUS = (1 << 127) - 1


def _file_name(key: str) -> str:
    """A file name for ``key``: 32 hex digits, spread like a hash.

    Not a cryptographic digest, and it need not be one: the file holds its key, and a
    file whose key differs is a miss. Computed with one integer operation, so a warm
    listing loads no hashing module (each costs ~0.3 ms to load).
    """
    number = int.from_bytes(key.encode("utf-8", "surrogateescape"), "big")
    return f"{number % _NAME_MODULUS:032x}"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number the cache holds")


#: The settings json.loads gives CPython's C scanner (json.decoder.JSONDecoder's), NaN
#: and Infinity refused. (An instance of a built-in type: a class of its own would cost
#: every warm start its creation.)
_SCANNER_CONTEXT = SimpleNamespace(
    strict=True,
    object_hook=None,
    object_pairs_hook=None,
    parse_float=float,
    parse_int=int,
    parse_constant=_refuse_constant,
)


def _loads(raw: bytes) -> Any:
    """``json.loads(raw)``, through CPython's C scanner when the file is well formed.

    ``import json`` compiles the decoder's and encoder's regexes (~1.5 ms, half a warm
    listing); json.loads hands the text to the C scanner, which needs none of them. What
    the scanner reads whole is json.loads's result; anything else (not UTF-8, surrounding
    space, an error, a constant, no C scanner) goes to json.loads itself, which returns
    or raises as it always does.
    """
    try:
        from _json import make_scanner

        text = raw.decode("utf-8")
        value, end = make_scanner(_SCANNER_CONTEXT)(text, 0)  # type: ignore[arg-type]
        if end == len(text):
            return value
    except Exception:  # noqa: BLE001 - json.loads below gives the answer or the error
        pass
    import json

    return json.loads(raw)


def default_dir() -> Path:
    """``$PLUGIN_REGISTRY_CACHE_DIR`` or the platform's user cache directory.

    On Linux and macOS the same directory platformdirs gives (``$XDG_CACHE_HOME`` or
    ``~/.cache``, ``~/Library/Caches``), computed here: importing platformdirs costs a
    warm listing 8 ms, more than the listing itself (tests/test_cache_invalidation.py
    checks the two agree).
    """
    override = os.environ.get(ENV_DIR)
    if override:
        return Path(override)
    if sys.platform == "darwin":
        return Path(os.path.expanduser("~/Library/Caches/plugin-registry"))
    if sys.platform.startswith("linux"):
        base = os.environ.get("XDG_CACHE_HOME", "")
        if not base.strip() or not os.path.isabs(base):  # XDG: a relative path is ignored
            base = os.path.expanduser("~/.cache")
        return Path(base) / "plugin-registry"
    import platformdirs

    return Path(platformdirs.user_cache_dir("plugin-registry", appauthor=False))


def enabled_by_env() -> bool:
    if ENV_DISABLE not in os.environ:
        return True  # the usual case, without loading the parser
    from plugin_registry._environ import flag

    return not flag(os.environ, ENV_DISABLE)


def search_path() -> list[str]:
    """``sys.path`` with the current directory spelled out, as it is searched."""
    cwd = os.getcwd()
    return [entry or cwd for entry in sys.path]


def _dist_entries(path: str) -> tuple[str | None, dict[str, int | None]]:
    """What the distributions in ``path`` are, from one listing of it.

    First, a digest of the distribution entries, each with its name, inode and
    mtime, so a distribution removed and installed again at the same version
    (``pip install --force-reinstall``) is a change too: ``None`` when the path
    does not exist, ``"file"`` for a zip or egg file (then its mtime alone
    decides). Second, the mtime of each ``*.egg-info/entry_points.txt``, which
    ``setup.py develop`` edits in place.
    """
    parts: list[str] = []
    eggs: dict[str, int | None] = {}
    try:
        # listdir and one lstat per distribution entry: a busy directory of
        # thousands of other files costs one listing, no stat for each.
        for name in os.listdir(path):
            if not name.endswith(_DIST_SUFFIXES):
                continue
            full = os.path.join(path, name)
            info = os.lstat(full)
            parts.append(f"{name}\0{info.st_ino}\0{info.st_mtime_ns}")
            if name.endswith(".egg-info") and os.path.isdir(full):
                file = os.path.join(full, "entry_points.txt")
                eggs[file] = _files.mtime_ns(file)
    except NotADirectoryError:
        return "file", {}
    except OSError:
        return (None if not os.path.exists(path) else "unlistable"), {}
    if not parts:
        return NO_DISTRIBUTIONS, eggs
    return _digest("\n".join(sorted(parts)), 20), eggs


def path_snapshot(paths: list[str], taken_at: float) -> list[list[Any]]:
    """``[path, mtime_ns or None, entries digest, mtime trusted, egg-info deps]`` per entry."""
    limit = (taken_at - RACY_SECONDS) * 1e9
    out: list[list[Any]] = []
    for entry in paths:
        mtime = _files.mtime_ns(entry)
        digest, eggs = _dist_entries(entry)
        out.append([entry, mtime, digest, mtime is None or mtime < limit, eggs])
    return out


def paths_unchanged(snapshot: list[list[Any]], paths: list[str]) -> bool:
    """No distribution was added, removed or edited in place on ``paths``.

    The first entry is the running program's own directory (the script's, the
    command's ``bin``, the current one for ``python -c``), which the cache key leaves
    out so that ``plugin-registry list`` warms the cache for a script: another
    program's first entry stands for this one where neither holds a distribution.
    """
    recorded = [item[0] for item in snapshot]
    if len(recorded) != len(paths) or recorded[1:] != paths[1:]:
        return False
    for index, (path, mtime, digest, trusted, eggs) in enumerate(snapshot):
        if not deps_unchanged(eggs):
            return False
        if index == 0 and path != paths[0]:
            if digest != NO_DISTRIBUTIONS or _dist_entries(paths[0])[0] != NO_DISTRIBUTIONS:
                return False
            continue
        if trusted and _files.mtime_ns(path) == mtime:
            continue
        if digest in (None, "file", "unlistable") or _dist_entries(path)[0] != digest:
            return False
    return True


def is_trusted(mtimes: Mapping[str, int | None], taken_at: float) -> bool:
    """No mtime is so close to ``taken_at`` that a change could hide in its tick."""
    limit = (taken_at - RACY_SECONDS) * 1e9
    return all(m is None or m < limit for m in mtimes.values())


def deps_unchanged(deps: Mapping[str, int | None]) -> bool:
    return all(_files.mtime_ns(path) == recorded for path, recorded in deps.items())


#: Finders that only serve the distributions on sys.path, added when importlib-metadata
#: is first imported (by the first scan): keying on them would give the same process
#: a second cache file after its first listing.
_PATH_FINDERS = frozenset({"importlib_metadata.MetadataPathFinder"})


def _finders() -> list[str]:
    """The meta-path finders that decide where distributions are found."""
    names = (f"{type(f).__module__}.{type(f).__qualname__}" for f in sys.meta_path)
    return [name for name in names if name not in _PATH_FINDERS]


class RecordCache:
    """One JSON file per interpreter-and-path key under ``directory``."""

    def __init__(self, directory: Path, group: str) -> None:
        self.directory = directory
        self.group = group
        # repr of plain strings and lists: as exact as JSON, without importing json.
        self.key = repr(
            [
                FORMAT,
                group,
                sys.executable,
                sys.version,
                search_path()[1:],  # the program's own directory: see paths_unchanged
                _finders(),
            ]
        )
        self.path = directory / f"{_file_name(self.key)}.json"

    def _directory_problem(self) -> str:
        """'' when the directory is a directory of this user's that only this user may write
        (or is not there yet: the first write makes it)."""
        try:
            return _files.directory_problem(self.directory)
        except FileNotFoundError:
            return ""

    def _refuse(self, why: str) -> None:
        _warn_once(
            f"untrusted:{self.directory}",
            f"not using the plugin record cache in {self.directory}: {why}. Listing works "
            f"without it (in memory). Make the directory your own with mode 0700 (chmod 700 "
            f"{self.directory}), or set {ENV_DIR} to one that is",
        )

    def read(self) -> dict[str, Any] | None:
        """The cached data, or None for a miss (absent, untrusted or malformed)."""
        return self._read()[0]

    def load(self) -> Cached | None:
        """The cached data, checked against its schema (:meth:`Cached.parse`), or None."""
        data, sealed = self._read()
        return Cached.parse(data, sealed=sealed)

    def _read(self) -> tuple[dict[str, Any] | None, bool]:
        """The data, and whether the file is as :meth:`write` left it (see :func:`_seal`)."""
        why = self._directory_problem()
        if why:
            self._refuse(why)
            return None, False
        try:
            raw = _files.read_regular(self.path, max_bytes=MAX_BYTES, check=_files.untrusted_reason)
        except _files.UntrustedFileError as exc:
            self._refuse(str(exc))
            return None, False
        except FileNotFoundError:
            return None, False
        except OSError:
            return None, False  # a FIFO, a device, a directory, too large: a miss, rewritten
        try:
            data = _loads(raw)
        except (ValueError, RecursionError) as exc:
            _warn_once(f"read:{self.path}", f"ignoring unreadable record cache {self.path}: {exc}")
            return None, False
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return None, False
        if data.get("key") != self.key:
            return None, False  # another interpreter's or path's file under the same name
        return data, _sealed(raw)

    def write(self, data: dict[str, Any]) -> None:
        """Replace the file atomically (owner-only), so a concurrent reader sees old or new."""
        import json  # the writing path only: a warm listing reads with _loads

        from plugin_registry._atomic_write import atomic_write_text

        data = {"format": FORMAT, "group": self.group, "key": self.key, **data}
        try:
            text = _seal(json.dumps(data, separators=(",", ":")))
        except (ValueError, TypeError, RecursionError):
            return  # records are validated; this is only a guard
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            why = self._directory_problem()
            if why:
                self._refuse(why)
                return
            atomic_write_text(self.path, text, mode=0o600, durable=False)
        except OSError as exc:
            _warn_once(
                f"write:{self.directory}",
                f"cannot write the plugin record cache in {self.directory} ({exc}); every "
                f"listing will rescan. Set {ENV_DIR} to a writable directory, or "
                f"{ENV_DISABLE}=1 to turn the cache off.",
            )


_SEAL = b',"seal":'


def _checksum(body: bytes) -> int:
    """``body`` as a number, modulo the Mersenne prime of numeric hashing (2**61 - 1 on
    64-bit builds): a checksum from built-ins alone, in ~40 us for a 40 KB file (hashlib,
    zlib and binascii would each cost a warm start more to import)."""
    return hash(int.from_bytes(body, "little"))


def _seal(text: str) -> str:
    """The JSON object ``text`` with a last member, ``"seal"``: the checksum of all before it.

    A file whose seal matches holds what :meth:`RecordCache.write` wrote: records that
    passed validation when they were collected, reused as they are
    (:meth:`Cached.reusable`). A file edited afterwards, by hand or by another program,
    no longer matches (a JSON writer puts spaces after the separators, or the content
    changed), and every record in it is validated again. The checksum is no signature:
    a same-user program could recompute it, but such a program could write
    site-packages as well; what keeps the cache from other users is its owner and mode.
    """
    body = text[:-1].encode("utf-8")  # without the closing brace
    return f"{text[:-1]}{_SEAL.decode()}{_checksum(body)}}}"


def _sealed(raw: bytes) -> bool:
    """Whether ``raw`` ends with the seal :func:`_seal` gave it."""
    at = raw.rfind(_SEAL)
    if at < 0 or not raw.endswith(b"}"):
        return False
    digits = raw[at + len(_SEAL) : -1]
    return digits.isdigit() and len(digits) < 40 and int(digits) == _checksum(raw[:at])


def _is_mtime(value: object) -> bool:
    return value is None or (type(value) is int and value >= 0)


def _is_deps(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and _is_mtime(v) for k, v in value.items()
    )


def _is_str_list(value: object, length: int | None = None) -> bool:
    return isinstance(value, list) and (length is None or len(value) == length)


class Cached:
    """A cache file's content, checked against its schema.

    ``paths`` and ``refs`` are checked when the file is parsed; each package's
    result only when it is reused (:meth:`reusable`), with every record passing
    the validation a fresh record passes, unless the file is ``sealed`` (as
    :meth:`RecordCache.write` left it, see :func:`_seal`). (A plain class: a dataclass
    would cost every warm start ~0.3 ms to create.)
    """

    def __init__(
        self,
        paths: list[list[Any]],
        refs: list[EntryPointRef],
        results: Mapping[str, Any],
        former: Mapping[str, str] | None = None,
        *,
        sealed: bool = False,
    ) -> None:
        self.paths = paths
        self.refs = refs
        self.results = results
        self.sealed = sealed
        #: ``kind/name`` -> the one package that served the name before another one came
        #: to provide it too (carried while the conflict lasts; see
        #: :func:`former_providers`).
        self.former: Mapping[str, str] = former if former is not None else {}

    @classmethod
    def parse(cls, data: object, *, sealed: bool = False) -> Cached | None:
        """The content, or None when any part does not match the schema (a miss)."""
        if not isinstance(data, dict):
            return None
        paths, refs, results = data.get("paths"), data.get("entry_points"), data.get("results")
        former = data.get("former", {})
        if not (isinstance(paths, list) and isinstance(refs, list) and isinstance(results, dict)):
            return None
        if not sealed and not (
            all(map(_is_path_entry, paths)) and all(map(_is_ref, refs)) and _is_former(former)
        ):
            return None
        try:
            refs_read = [EntryPointRef.from_list(item) for item in refs]
        except (TypeError, ValueError):
            return None
        return cls(paths, refs_read, results, former, sealed=sealed)

    def providers(self) -> dict[str, set[str]]:
        """``kind/name`` -> the packages whose cached records answer to it."""
        collected = []
        for entry in self.results.values():
            with contextlib.suppress(Exception):  # a malformed entry says nothing
                collected.append(Collected.from_dict(entry))
        return providers_of(r for c in collected for r in c.records)

    def reusable(self, ref: EntryPointRef) -> Collected | None:
        """The cached result of ``ref`` when it is still valid and well formed, else None."""
        entry = self.results.get(ref.key)
        if not isinstance(entry, dict) or entry.get("ref") != ref.to_list():
            return None
        if entry.get("trusted") is not True:
            return None
        if not (self.sealed or _is_deps(entry.get("deps"))) or not deps_unchanged(entry["deps"]):
            return None
        try:
            if self.sealed:  # validated when collected; the file is as it was written
                return Collected.from_cache(entry)
            collected = Collected.from_dict(entry)
            if not _well_formed(collected, ref):
                return None
        except Exception:  # noqa: BLE001 - any malformed entry is a miss, collected afresh
            return None
        return collected

    @staticmethod
    def dump(
        paths: list[list[Any]],
        refs: list[EntryPointRef],
        results: Mapping[str, Collected],
        former: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The JSON-ready content for :meth:`RecordCache.write`."""
        return {
            "former": dict(former or {}),
            "paths": paths,
            "entry_points": [ref.to_list() for ref in refs],
            "results": {
                ref.key: {
                    "ref": ref.to_list(),
                    "trusted": is_trusted(results[ref.key].deps, results[ref.key].collected_at),
                    **results[ref.key].to_dict(),
                }
                for ref in refs
                if ref.key in results
            },
        }


def _well_formed(collected: Collected, ref: EntryPointRef) -> bool:
    """Every record passes the validation a fresh one passes and belongs to ``ref``'s
    package; every problem and field has its type."""
    for record in collected.records:
        if record.kind not in KINDS or (record.distribution, record.version) != (
            ref.distribution,
            ref.version,
        ):
            return False
        validate_record(record, record.kind, parse_constraints=False)
        if not (isinstance(record.available, bool) and isinstance(record.unavailable_reason, str)):
            return False
    for problem in collected.problems:
        texts = (problem.entry_point, problem.reason, problem.detail, *problem.names)
        if not (
            problem.severity in ("error", "warning")
            and problem.kind in (None, *KINDS)
            and all(isinstance(v, str) for v in texts)
        ):
            return False
    return (
        isinstance(collected.collected_at, (int, float))
        and all(isinstance(h, str) for h in collected.hooks)
        and isinstance(collected.output, str)
    )


def _is_path_entry(item: object) -> bool:
    """``[path, mtime, digest, trusted, egg-info deps]``, as :func:`path_snapshot` writes."""
    return (
        isinstance(item, list)
        and len(item) == 5
        and isinstance(item[0], str)
        and _is_mtime(item[1])
        and (item[2] is None or isinstance(item[2], str))
        and isinstance(item[3], bool)
        and _is_deps(item[4])
    )


def _is_ref(item: object) -> bool:
    """An entry point as :meth:`EntryPointRef.to_list` writes it."""
    return (
        isinstance(item, list)
        and len(item) == 5
        and all(isinstance(v, str) for v in item[:4])
        and (item[4] is None or isinstance(item[4], str))
    )


def _is_former(former: object) -> bool:
    return (
        isinstance(former, dict)
        and len(former) <= MAX_FORMER
        and all(isinstance(k, str) and isinstance(v, str) for k, v in former.items())
    )


#: At most this many remembered providers (one per conflicting name) are kept.
MAX_FORMER = 10_000


def may_share_names(records: Iterable[PluginInfo]) -> bool:
    """False when no two packages answer to one ``kind/name``: the usual answer, found
    without building :func:`providers_of`'s map (True may still be two spellings of one
    package's name)."""
    first: dict[tuple[str, str], str | None] = {}
    for record in records:
        for name in record.names():
            if first.setdefault((record.kind, name), record.distribution) != record.distribution:
                return True
    return False


def providers_of(records: Iterable[PluginInfo]) -> dict[str, set[str]]:
    """``kind/name`` -> the packages (qualifiers) whose ``records`` answer to it."""
    out: dict[str, set[str]] = {}
    qualifiers: dict[str | None, str] = {}  # one normalisation per package, not per record
    for record in records:
        qualifier = qualifiers.get(record.distribution)
        if qualifier is None:
            qualifier = qualifiers[record.distribution] = record.qualifier
        for name in record.names():
            out.setdefault(f"{record.kind}/{name}", set()).add(qualifier)
    return out


def former_providers(before: Cached | None, results: Mapping[str, Collected]) -> dict[str, str]:
    """For each name that several packages provide now, the one package that provided it
    alone in the listing before (or, while the conflict lasts, the one remembered then):
    what a bare lookup meant before an upgrade made it ambiguous."""
    if before is None:
        return {}
    now = providers_of(r for c in results.values() for r in c.records)
    conflicting = {key for key, who in now.items() if len(who) > 1}
    if not conflicting:
        return {}
    former = {k: v for k, v in before.former.items() if k in conflicting}
    for key, who in before.providers().items():
        if key in conflicting and key not in former and len(who) == 1:
            former[key] = next(iter(who))
    return dict(sorted(former.items())[:MAX_FORMER])


def clear(directory: Path | None = None) -> int:
    """Delete every cache file in ``directory``; return how many were removed."""
    directory = directory or default_dir()
    removed = 0
    if not directory.is_dir():
        return 0
    for file in directory.iterdir():
        if (file.suffix == ".json" or file.name.endswith(".tmp")) and not file.is_dir():
            file.unlink(missing_ok=True)
            removed += 1
    return removed


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, PluginRegistryWarning, stacklevel=4)
