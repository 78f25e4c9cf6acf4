"""DistributedCheckpointIO: sharded checkpoints on torch.distributed.checkpoint (DCP).

Every rank writes its own shards in parallel; a load reshards to the world size
(and the sharding) of the state it loads into. What this plugin adds to DCP:

* **Commit marker.** A checkpoint at ``path`` is a directory holding DCP's files
  in ``data-<id>/`` and ``checkpoint.json``, which names the data directory and
  is written last, in one atomic step (rename on a local disk, one PUT on an
  object store). Until it is written the new data is not a checkpoint; a save
  that dies half way leaves the previous checkpoint loadable, and the broken
  data is reported by the next load and removed by the next save.
* **Safe loads.** DCP unpickles its ``.metadata`` file and loads non-tensor
  values with ``weights_only=False``; here the metadata goes through an
  unpickler that admits DCP's own record classes only, and values load with
  ``weights_only=True`` unless the caller opts out.
* **Key types.** DCP turns every key into a string (an optimizer's
  ``state[0]`` comes back as ``state["0"]``); the original keys are kept in the
  marker and restored.
* **Removal while reading.** A load opens every shard file before it reads, so
  a ``remove_checkpoint`` from another process on the same machine cannot tear
  a load that has begun.

Plain DCP directories (a ``.metadata`` file, no marker), as Lightning's FSDP
strategy writes them, load too.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import io
import json
import os
import pickle
import threading
import uuid
import warnings
import weakref
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from builtin_plugins.checkpoint_io.torch_io import (
    checked_path,
    filesystem,
    is_local,
    open_regular,
    refuse_bucket,
    remote_failure,
    remove_link,
    require_regular,
    store_errors,
    without_crc32,
)
from plugin_registry.errors import PluginRegistryWarning
from plugin_registry.files import (
    atomic_write,
    fsync_directory,
    open_writeback,
    release_cached_pages,
)
from plugin_registry.kinds.checkpoint_io import (
    CheckpointError,
    CheckpointIO,
    PathLike,
    save_failure,
)

MARKER = "checkpoint.json"
FORMAT = "plugin-registry/distributed-checkpoint"
DATA_PREFIX = "data-"
_DCP_METADATA = ".metadata"
# A marker is a few names and the key paths of the entries the metadata lists: it
# is never much larger than that metadata, and reading one costs in proportion.
_MARKER_FLOOR_BYTES = 1024 * 1024
_MARKER_PER_METADATA_BYTE = 4
_JSON_KEYS = (int, float, bool, type(None))


# -- the commit marker ---------------------------------------------------------------


def marker_shape(state: Mapping[Any, Any]) -> dict[str, list[list[Any]]]:
    """What DCP's flattening loses, for the marker to keep and a load to restore.

    ``keys``: the key paths whose last key is not a string. DCP joins keys with dots
    after ``str()``; keys JSON can keep (int, float, bool, None) are restored, any
    other key type is refused rather than silently changed.
    ``empty``: the paths of empty dicts, which DCP drops (a fresh optimizer's
    ``state``; a Trainer's ``callbacks``). One that is an element of a list, or a
    list element holding nothing but empty dicts, is refused: DCP would shift or
    lose the list, and the checkpoint would not load.
    """
    keys: list[list[Any]] = []
    empty: list[list[Any]] = []

    def dotted(path: list[Any]) -> str:
        return ".".join(map(str, path))

    def walk(value: Any, path: list[Any], in_list: bool) -> bool:
        """Walk ``value``; whether DCP keeps a leaf under it."""
        if isinstance(value, Mapping):
            kept = False
            for key, item in value.items():
                if not isinstance(key, str):
                    if not isinstance(key, _JSON_KEYS):
                        raise CheckpointError(
                            f"cannot save key {key!r} at {dotted([*path, key])!r}: a distributed "
                            "checkpoint keeps str, int, float, bool and None keys, not "
                            f"{type(key).__name__}; convert it to a string first"
                        )
                    keys.append([*path, key])
                kept = walk(item, [*path, key], False) or kept
            if not kept:
                if in_list:
                    raise CheckpointError(
                        f"cannot save {dotted(path)!r} in a distributed checkpoint: a list "
                        "element that holds only empty dicts is dropped by DCP, which shifts "
                        "the list; put a value in it, or save the list as a tuple"
                    )
                if not value and path:
                    empty.append(path)
            return kept
        if isinstance(value, list) and not _dcp_leaf(value):
            kept = False
            for index, item in enumerate(value):
                kept = walk(item, [*path, index], True) or kept
            return kept
        return True

    walk(state, [], False)
    return {"keys": keys, "empty": empty}


def _dcp_leaf(value: list[Any]) -> bool:
    """Whether DCP saves a list whole (it holds no dict and no tensor, at any depth of
    lists) rather than element by element (torch.distributed.checkpoint._traverse)."""
    import torch

    for item in value:
        if isinstance(item, (Mapping, torch.Tensor)):
            return False
        if isinstance(item, list) and not _dcp_leaf(item):
            return False
    return True


def restore_shape(state: dict[str, Any], keys: list[list[Any]], empty: list[list[Any]]) -> None:
    """Undo what :func:`marker_shape` names, in place: the empty dicts come back, then
    DCP's ``str()`` of the keys is undone. A path that leads to nothing the loaded
    state holds changes nothing: what loads is what the shards hold."""
    for path in sorted(empty, key=len):
        node = _follow(state, path[:-1], make=True)
        if isinstance(node, dict):
            node.setdefault(str(path[-1]), {})
    # Deepest first, so that the parents are still reached by their string form.
    for path in sorted(keys, key=len, reverse=True):
        node = _follow(state, path[:-1], make=False)
        if isinstance(node, dict) and str(path[-1]) in node:
            node[path[-1]] = node.pop(str(path[-1]))


def _follow(state: dict[str, Any], path: list[Any], make: bool) -> Any:
    """The container at ``path`` (dict keys in their string form), or None; ``make``
    adds missing dicts on the way (DCP drops a dict that holds only empty ones)."""
    node: Any = state
    for part in path:
        if isinstance(node, list) and type(part) is int and 0 <= part < len(node):
            node = node[part]
        elif isinstance(node, dict):
            node = node.setdefault(str(part), {}) if make else node.get(str(part))
        else:
            return None
    return node


def marker_limit(fs: Any, root: str, dirs: list[str]) -> int:
    """The most bytes a commit marker at ``root`` may hold: in proportion to the
    largest DCP metadata among its data directories (whose entries its keys name)."""
    largest = 0
    for name in dirs:
        with contextlib.suppress(OSError):
            largest = max(largest, int(fs.size(f"{root}/{name}/{_DCP_METADATA}") or 0))
    return _MARKER_FLOOR_BYTES + _MARKER_PER_METADATA_BYTE * largest


def read_marker(fs: Any, root: str, shown: str, limit: int) -> dict[str, Any]:
    """The parsed ``checkpoint.json`` of the checkpoint at ``root``, of at most ``limit``
    bytes (:func:`marker_limit`)."""
    marker = f"{root}/{MARKER}"
    try:
        if is_local(fs):
            require_regular(marker, shown)
        size = fs.size(marker)
        if size > limit:
            raise ValueError(
                f"{size} bytes, larger than a marker of its metadata can be ({limit} bytes)"
            )
        with fs.open(marker, "rb") as fh:
            parsed = json.loads(fh.read(limit + 1))
        if not isinstance(parsed, dict) or parsed.get("format") != FORMAT:
            raise ValueError(f"its format is not {FORMAT!r}")
        data = parsed["data"]
        if not isinstance(data, str) or not data.startswith(DATA_PREFIX) or "/" in data:
            raise ValueError(f"it names {data!r} as its data directory")
        for field in ("keys", "empty"):
            paths = parsed.setdefault(field, [])
            if not isinstance(paths, list) or not all(
                isinstance(path, list)
                and path
                and all(isinstance(k, (str, *_JSON_KEYS)) for k in path)
                for path in paths
            ):
                raise ValueError(f"its {field!r} field is not a list of key paths")
    except RecursionError:
        raise CheckpointError(
            f"cannot load checkpoint {shown!r}: its commit marker {MARKER} is damaged (nested "
            "too deeply to be one); the checkpoint cannot be trusted, save it again",
            shown,
            reason="unreadable",
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"cannot load checkpoint {shown!r}: its commit marker {MARKER} is damaged ({exc}); "
            "the checkpoint cannot be trusted, save it again",
            shown,
            reason="unreadable",
        ) from exc
    return parsed


def write_marker(fs: Any, root: str, marker: dict[str, Any], durable: bool) -> None:
    """Commit: one atomic replacement of ``checkpoint.json``."""
    text = json.dumps(marker, indent=1).encode()
    if is_local(fs):
        atomic_write(f"{root}/{MARKER}", lambda fh: _write(fh, text), durable=durable)
    else:
        # A single PUT becomes visible whole or not at all on object stores.
        fs.pipe_file(f"{root}/{MARKER}", text)


def _write(fh: Any, data: bytes) -> None:
    fh.write(data)


def data_directories(fs: Any, root: str) -> list[str]:
    """The names of the ``data-*`` directories under ``root``."""
    try:
        entries = fs.ls(root, detail=False)
    except (FileNotFoundError, NotADirectoryError):
        return []
    names = [e.rstrip("/").rsplit("/", 1)[-1] for e in entries]
    return sorted(n for n in names if n.startswith(DATA_PREFIX))


def discard(fs: Any, root: str, data: str) -> None:
    """Remove a save's uncommitted data, and ``root`` if that leaves it empty (best effort)."""
    with contextlib.suppress(Exception):  # the store may be what failed
        fs.rm(data, recursive=True)
    with contextlib.suppress(Exception):
        if not fs.ls(root, detail=False):
            fs.rmdir(root)


@contextlib.contextmanager
def single_process_quiet(group: Any | None) -> Iterator[None]:
    """Without a group, DCP warns that it assumes one process: we asked for exactly that."""
    with warnings.catch_warnings():
        if group is None:
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


# -- reading DCP's files safely ------------------------------------------------------------


class _MetadataUnpickler(pickle.Unpickler):
    """Admits the classes DCP's metadata is made of, and nothing that runs code.

    Each by its exact (module, name): a whole module is never admitted, since
    pickle resolves a dotted name attribute by attribute (``os.system`` through
    the metadata module's own ``os``), and a name with a dot is refused outright.
    """

    _METADATA = "torch.distributed.checkpoint.metadata"
    _NAMES: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            (_METADATA, "Metadata"),
            (_METADATA, "MetadataIndex"),
            (_METADATA, "ChunkStorageMetadata"),
            (_METADATA, "TensorProperties"),
            (_METADATA, "TensorStorageMetadata"),
            (_METADATA, "BytesStorageMetadata"),
            (_METADATA, "StorageMeta"),
            (_METADATA, "_MEM_FORMAT_ENCODING"),
            ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
            ("torch.serialization", "_get_layout"),
            ("torch", "Size"),
            ("pathlib", "PosixPath"),
            ("pathlib", "PurePosixPath"),
            ("pathlib", "WindowsPath"),
            ("pathlib", "PureWindowsPath"),
            ("collections", "OrderedDict"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        import torch

        if "." not in name:
            if (module, name) in self._NAMES:
                return super().find_class(module, name)
            if module == "torch" and isinstance(
                vars(torch).get(name), (torch.dtype, torch.layout, torch.memory_format)
            ):
                return vars(torch)[name]
        raise pickle.UnpicklingError(
            f"the checkpoint's metadata names {module}.{name}, which DCP's metadata never holds"
        )


def read_metadata(stream: Any, safe: bool) -> Any:
    if safe:
        return _MetadataUnpickler(stream).load()
    return pickle.load(stream)  # the caller opted out with weights_only=False


@functools.cache  # built once, on the first load: they subclass torch's, imported late
def _reader_classes() -> tuple[type[Any], type[Any]]:
    """The local and fsspec readers: DCP's, with a safe metadata read and open files."""
    from torch.distributed.checkpoint._fsspec_filesystem import FsspecReader
    from torch.distributed.checkpoint.filesystem import FileSystemReader
    from torch.distributed.checkpoint.metadata import StorageMeta

    class SafeMetadata:
        safe = True
        local_files = False
        shown = ""

        def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
            path = self._get_metadata_path(kwargs.get("rank"))  # type: ignore[attr-defined]
            if self.local_files:
                require_regular(os.fspath(path), self.shown)
            with self.fs.create_stream(path, "rb") as stream:  # type: ignore[attr-defined]
                metadata = read_metadata(stream, self.safe)
            if getattr(metadata, "storage_meta", None) is None:
                metadata.storage_meta = StorageMeta()
            metadata.storage_meta.load_id = self.load_id  # type: ignore[attr-defined]
            return metadata

    class LocalReader(SafeMetadata, FileSystemReader):
        """Opens every shard file up front: a removal after that cannot tear the load."""

        local_files = True

        def open_all(self) -> None:
            self.opened: dict[str, int] = {}
            for name in os.listdir(self.path):
                if name.endswith(".distcp"):
                    where = os.path.join(self.path, name)
                    self.opened[name] = open_regular(where, self.shown)
            original = self.fs.create_stream

            @contextlib.contextmanager
            def create_stream(path: Any, mode: str) -> Iterator[Any]:
                fd = self.opened.get(os.path.basename(os.fspath(path)))
                if fd is None or mode != "rb":
                    with original(path, mode) as stream:
                        yield stream
                    return
                with os.fdopen(os.dup(fd), "rb") as stream:
                    stream.seek(0)
                    yield stream

            # Instance attribute: this reader's streams only.
            setattr(self.fs, "create_stream", create_stream)  # noqa: B010

        def close(self) -> None:
            for fd in getattr(self, "opened", {}).values():
                with contextlib.suppress(OSError):
                    os.close(fd)
            self.opened = {}

    class RemoteReader(SafeMetadata, FsspecReader):
        def open_all(self) -> None:
            pass

        def close(self) -> None:
            pass

    return LocalReader, RemoteReader


@functools.cache
def _planner_classes() -> tuple[type[Any], type[Any]]:
    """DCP's load planners with ``weights_only`` honoured for non-tensor values."""
    import torch
    from torch.distributed.checkpoint.default_planner import (
        DefaultLoadPlanner,
        _EmptyStateDictLoadPlanner,
    )

    class SafeBytes:
        safe = True

        def load_bytes(self, read_item: Any, value: io.BytesIO) -> None:
            loaded = torch.load(value, weights_only=self.safe)
            # DCP's own code, with the object already loaded: set it where it belongs.
            if self.flatten_state_dict:  # type: ignore[attr-defined]
                from torch.distributed.checkpoint._traverse import set_element as put

                put(
                    self.original_state_dict,  # type: ignore[attr-defined]
                    self.mappings[read_item.dest_index.fqn],  # type: ignore[attr-defined]
                    loaded,
                )
            else:
                self.state_dict[read_item.dest_index.fqn] = loaded  # type: ignore[attr-defined]

    class IntoState(SafeBytes, DefaultLoadPlanner):
        pass

    class Everything(SafeBytes, _EmptyStateDictLoadPlanner):
        pass

    return IntoState, Everything


# -- the plugin ------------------------------------------------------------------------------


@functools.cache
def _writeback_file_system() -> type[Any]:
    from torch.distributed.checkpoint.filesystem import FileSystem

    class WritebackFileSystem(FileSystem):
        """DCP's local file system, its files written with :func:`open_writeback`: the
        disk writes while DCP serializes the rest, and each fsync waits for the last
        16 MB (a 2-rank save of 200 MB: ~25 ms less). ``written`` lists them."""

        def __init__(self) -> None:
            super().__init__()
            self.written: list[str] = []

        @contextlib.contextmanager
        def create_stream(self, path: str | os.PathLike[str], mode: str) -> Iterator[Any]:
            if mode != "wb":
                with super().create_stream(path, mode) as stream:
                    yield stream
                return
            self.written.append(os.fspath(path))
            with open_writeback(path, mode) as stream:
                yield stream

    return WritebackFileSystem


def _forget_plans(keys: set[str]) -> None:
    """Drop the plans DCP caches (in class-level dicts) under ``keys``."""
    import sys

    dcp_planner = sys.modules.get("torch.distributed.checkpoint.planner")
    if dcp_planner is None:  # never saved: nothing cached
        return
    saver = dcp_planner.SavePlanner
    for key in keys:
        for cache in (
            saver._cached_save_plan,
            saver._cached_final_save_plan,
            saver._cached_all_plans,
            saver._cached_global_plan,
            saver._cached_metadata,
        ):
            cache.pop(key, None)
    keys.clear()


class DistributedCheckpointIO(CheckpointIO):
    """Sharded checkpoints: each rank writes its shards, loads reshard.

    ``save_checkpoint`` and ``load_checkpoint`` with ``state=`` are collective
    when a process group is initialized: every rank of ``process_group`` (the
    default group when None) calls them with its own shards, as with
    ``torch.distributed.checkpoint`` itself. Without a process group they work
    on one process. ``path`` is a directory, or an fsspec URL of one
    (``s3://bucket/run/step-100``). ``thread_count`` threads per rank write its
    files; ``durable=False`` skips the fsyncs (still safe against a crashed
    process, not against a power loss).
    """

    def __init__(
        self,
        weights_only: bool = True,
        thread_count: int = 1,
        durable: bool = True,
        process_group: Any | None = None,
    ) -> None:
        if not isinstance(thread_count, int) or isinstance(thread_count, bool) or thread_count < 1:
            raise ValueError(f"thread_count must be a positive integer, got {thread_count!r}")
        self.weights_only = weights_only
        self.thread_count = thread_count
        self.durable = durable
        self.process_group = process_group
        # Threads removing the data that committed saves replaced; they leave alone the
        # data directories of saves under way on this process and, per checkpoint, the
        # one its last commit here named (an older save's thread may run after it).
        self._tidying: list[threading.Thread] = []
        self._writing: set[str] = set()
        self._latest: dict[str, str] = {}
        self._writing_lock = threading.Lock()
        # Per group (its ranks): the prefix of this IO's data directory names and how
        # many saves used it; the keys of the plans DCP caches for this IO.
        self._names: dict[tuple[int, ...], tuple[str | None, int]] = {}
        self._plan_keys: set[str] = set()
        # Per checkpoint directory: the files this rank wrote in its last save there,
        # whose cached pages the next save there drops (see _release_last_save).
        self._last_files: dict[str, list[str]] = {}
        # DCP keeps cached plans for the life of the process: an IO that is collected
        # without a teardown drops its own.
        weakref.finalize(self, _forget_plans, self._plan_keys)

    # -- process group ---------------------------------------------------------------

    def _group(self) -> Any | None:
        """The group to coordinate on, or None for one process on its own."""
        import torch.distributed as dist

        if self.process_group is not None:
            return self.process_group
        if dist.is_available() and dist.is_initialized():
            return dist.group.WORLD
        return None

    @staticmethod
    def _is_coordinator(group: Any | None) -> bool:
        import torch.distributed as dist

        return group is None or dist.get_rank(group) == 0

    @staticmethod
    def _from_coordinator(group: Any | None, value: Any) -> Any:
        """The coordinator's ``value`` on every rank (a barrier, too)."""
        import torch.distributed as dist

        if group is None:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=dist.get_global_rank(group, 0), group=group)
        return box[0]

    # -- saving ----------------------------------------------------------------------------

    def _writer(self, fs: Any, data: str, storage_options: Mapping[str, Any]) -> Any:
        from torch.distributed.checkpoint._fsspec_filesystem import FsspecWriter
        from torch.distributed.checkpoint.filesystem import FileSystemWriter

        if is_local(fs):
            writer = FileSystemWriter(
                data, sync_files=self.durable, thread_count=self.thread_count, overwrite=True
            )
            if self.durable:
                writer.fs = _writeback_file_system()()
            return writer
        return FsspecWriter(
            fs.unstrip_protocol(data),
            sync_files=False,
            thread_count=self.thread_count,
            overwrite=True,
            **storage_options,
        )

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: PathLike, storage_options: Any | None = None
    ) -> None:
        """Write this rank's shards of ``checkpoint``, then (coordinator) commit.

        ``storage_options`` go to fsspec (an object store's endpoint and keys).
        Returns on every rank once the checkpoint is committed; a failure on any
        rank raises :class:`CheckpointError` on every rank and leaves the previous
        checkpoint at ``path`` as it was.
        """
        group = self._group()
        with self._names_agreed_afresh_after_a_failure(group):
            path, options, shape, fs, root = self._prepare(checkpoint, path, storage_options)
            self._save(checkpoint, path, options, group, shape, fs, root)

    @staticmethod
    def _prepare(
        checkpoint: dict[str, Any], path: PathLike, storage_options: Any | None
    ) -> tuple[str, dict[str, Any], dict[str, Any], Any, str]:
        """The local checks and parts of a save: the path, the store's options, the marker's
        key shape, the file system and the root (an error before any collective)."""
        shown = checked_path(path)
        options = dict(storage_options or {})
        shape = marker_shape(checkpoint)
        fs, root = filesystem(shown, options)
        refuse_bucket(fs, root, shown, "saved")
        return shown, options, shape, fs, root

    @contextlib.contextmanager
    def _names_agreed_afresh_after_a_failure(self, group: Any | None) -> Iterator[None]:
        """After a failed save the ranks may have counted differently (one failed before
        its count, the others in a collective): the next save agrees on a new prefix."""
        try:
            yield
        except BaseException:
            self._names.pop(self._group_key(group), None)
            raise

    def _save(
        self,
        checkpoint: dict[str, Any],
        path: str,
        options: dict[str, Any],
        group: Any | None,
        shape: dict[str, Any],
        fs: Any,
        root: str,
    ) -> None:
        """The collective part of a save, on ``group``: write, commit, and agree on the
        outcome (every rank raises the same :class:`CheckpointError`, or none does)."""
        from torch.distributed.checkpoint.api import CheckpointException
        from torch.distributed.checkpoint.state_dict_saver import save

        # Not waiting for the last save's tidying: it removes neither this save's data
        # (registered first) nor what the latest commit named.
        name = self._next_data_name(group)
        self._writing_data(name)
        try:
            data = f"{root}/{name}"
            try:
                if is_local(fs) and os.path.isfile(root):
                    raise NotADirectoryError(20, "Not a directory", root)
                self._release_last_save(root)
                writer = self._writer(fs, data, options)
                with single_process_quiet(group), without_crc32():
                    save(
                        checkpoint,
                        storage_writer=writer,
                        planner=self._planner(group),
                        process_group=group,
                        no_dist=group is None,
                    )
                self._last_files[root] = getattr(writer.fs, "written", [])
            except (Exception, CheckpointException) as exc:  # every failure: not committed
                if self._is_coordinator(group):
                    discard(fs, root, data)
                raise CheckpointError(self._save_failure(path, exc), path) from exc
            error = None
            if self._is_coordinator(group):
                error = self._commit(fs, root, name, shape, group, path)
            error = self._from_coordinator(group, error)
            if error is not None:
                raise CheckpointError(error, path)
        finally:
            self._written(name)

    def _release_last_save(self, root: str) -> None:
        """Drop the cached pages of the files this rank wrote in its last save to
        ``root``: this save replaces them, and its own writes then get that memory,
        just freed (see :func:`~plugin_registry.files.release_cached_pages`: on the
        team's virtual machines, memory freed seconds before is 2-4x slower to write;
        2-rank saves of 200 MB 1-2 s apart took 102-136 ms with this, 117-153 without).
        They are clean (fsynced), and stay on disk, committed, until this save's commit
        replaces them."""
        for path in self._last_files.pop(root, []):
            release_cached_pages(path)

    def _next_data_name(self, group: Any | None) -> str:
        """A data directory name no earlier save used, the same on every rank.

        The coordinator draws a random prefix at the first save on a group (one
        broadcast); each save after it counts on. Every rank of the group calls each
        save in the same order, so the counts agree without a collective per save
        (a broadcast on 2 ranks over gloo costs 1-5 ms, waiting for the slowest rank).
        """
        key = self._group_key(group)
        prefix, count = self._names.get(key, (None, 0))
        if prefix is None:
            prefix = self._from_coordinator(group, uuid.uuid4().hex[:10])
        self._names[key] = (prefix, count + 1)
        return f"{DATA_PREFIX}{prefix}{count:06x}"

    @staticmethod
    def _group_key(group: Any | None) -> tuple[int, ...]:
        import torch.distributed as dist

        return () if group is None else tuple(dist.get_process_group_ranks(group))

    def _planner(self, group: Any | None) -> Any:
        """DCP's save planner, reusing the global plan of the last save of the same
        structure (DCP's plan caching: the coordinator skips planning and validating,
        the plans exchanged are empty; ~12 of a 2-rank save's 145 ms)."""
        from torch.distributed.checkpoint.default_planner import DefaultSavePlanner

        planner = DefaultSavePlanner(enable_plan_caching=True)
        # DCP keys its cache on the planner class: one key per IO and group here, so
        # another IO (another state) or another group (another world) never meets it.
        planner._cached_plans_key = self._plan_key(group)
        self._plan_keys.add(planner._cached_plans_key)
        return planner

    def _plan_key(self, group: Any | None) -> str:
        ranks = ",".join(map(str, self._group_key(group)))
        return f"plugin_registry.{type(self).__name__}:{id(self)}:{ranks}"

    def _forget_plans(self) -> None:
        _forget_plans(self._plan_keys)

    def _writing_data(self, name: str) -> None:
        """A save writes ``name`` now: tidying leaves it alone until :meth:`_written`."""
        with self._writing_lock:
            self._writing.add(name)

    def _written(self, name: str) -> None:
        """The save writing ``name`` is over (committed or not): tidying may see it."""
        with self._writing_lock:
            self._writing.discard(name)

    def _commit(
        self,
        fs: Any,
        root: str,
        name: str,
        shape: dict[str, Any],
        group: Any | None,
        shown: str,
    ) -> str | None:
        """Write the marker, then drop every other data directory; the error (naming
        ``shown``, the path as the caller gave it), or None."""
        import torch.distributed as dist

        marker = {
            "format": FORMAT,
            "version": 1,
            "data": name,
            "world_size": 1 if group is None else dist.get_world_size(group),
            "saved": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            **shape,
        }
        limit, size = marker_limit(fs, root, [name]), len(json.dumps(marker, indent=1))
        if size > limit:  # a load would refuse it: the save fails instead
            discard(fs, root, f"{root}/{name}")
            return (
                f"cannot save checkpoint to {shown!r}: its {len(shape['keys'])} non-string keys "
                f"and {len(shape['empty'])} empty dicts need a commit marker of {size} bytes, "
                f"more than a load accepts beside its metadata ({limit}); save fewer of them "
                "(or use the 'torch' checkpoint IO); the previous checkpoint there, if any, "
                "is intact"
            )
        try:
            if is_local(fs) and self.durable:
                # The data directory's entries first: the marker never names lost files.
                fsync_directory(f"{root}/{name}")
            write_marker(fs, root, marker, self.durable)
        except OSError as exc:
            discard(fs, root, f"{root}/{name}")
            return save_failure(shown, exc)
        except Exception as exc:  # noqa: BLE001 - a store's client raises its own types
            discard(fs, root, f"{root}/{name}")
            return remote_failure("save checkpoint to", shown, exc)
        # Committed. Deleting the previous data frees its blocks, which costs as much as
        # a fifth of the save: a thread does it, while the caller and its next save go on
        # (joined by a load, remove_checkpoint() and teardown()).
        with self._writing_lock:
            self._latest[root] = name
        self._tidying = [t for t in self._tidying if t.is_alive()]
        tidying = threading.Thread(
            target=self._remove_others, args=(fs, root), name="DistributedCheckpointIO-tidy"
        )
        self._tidying.append(tidying)
        tidying.start()
        return None

    def _remove_others(self, fs: Any, root: str) -> None:
        """Delete every data directory under ``root`` but the one the last commit here
        named and those of saves under way on this process (best effort)."""
        with contextlib.suppress(Exception):
            for old in data_directories(fs, root):
                with self._writing_lock:
                    if old == self._latest.get(root) or old in self._writing:
                        continue
                fs.rm(f"{root}/{old}", recursive=True)

    def _join_tidying(self) -> None:
        tidying, self._tidying = self._tidying, []
        for thread in tidying:
            thread.join()

    def teardown(self) -> None:
        """Finish removing the data that the last save replaced; forget cached plans."""
        self._join_tidying()
        self._forget_plans()

    @staticmethod
    def _save_failure(path: str, exc: BaseException) -> str:
        from torch.distributed.checkpoint.api import CheckpointException

        cause = _first_failure(exc)
        rank = ""
        if isinstance(exc, CheckpointException) and exc.failures:
            failed = list(exc.failures)
            more = f" and {len(failed) - 1} more rank(s)" if len(failed) > 1 else ""
            rank = f"rank {failed[0]}{more}"
        text = str(cause).splitlines()[0] if str(cause) else ""
        if isinstance(cause, OSError):
            return f"on {rank}: {save_failure(path, cause)}" if rank else save_failure(path, cause)
        if isinstance(cause, ValueError) and "duplicated flatten key" in text:
            key = text.rpartition(" ")[2]
            return (
                f"cannot save checkpoint to {path!r}: two entries are both named {key!r} once "
                "their keys are joined with dots (DCP's naming); rename one of them"
            )
        if "closed by peer" in text or "reset by peer" in text:
            # gloo's words when another rank died mid-save.
            return (
                f"cannot save checkpoint to {path!r}: another rank stopped or lost its "
                f"connection during the save ({type(cause).__name__}: {text}); the previous "
                "checkpoint there, if any, is intact"
            )
        return (
            f"cannot save checkpoint to {path!r}{f' ({rank})' if rank else ''}: "
            f"{type(cause).__name__}: {text}; "
            "the previous checkpoint there, if any, is intact"
        )

    # -- loading ---------------------------------------------------------------------------

    def load_checkpoint(
        self,
        path: PathLike,
        map_location: Any = "cpu",
        weights_only: bool | None = None,
        state: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Read the checkpoint at ``path``.

        Without ``state``, every value is loaded whole on this process (any world
        size, no process group needed) onto ``map_location``. With ``state`` (this
        rank's state dict: plain tensors, DTensors of the new sharding, values to
        replace), the checkpoint is loaded into it in place, resharded to its
        layout, and returned; that is collective when a process group is up.
        """
        safe = self.weights_only if weights_only is None else weights_only
        self._join_tidying()
        reader = self._open(path, safe)
        try:
            return self._read(reader, state, map_location)
        finally:
            reader.close()

    def _open(self, path: PathLike, safe: bool) -> Any:
        """A reader of the committed data at ``path``, its metadata read, its files open."""
        path = checked_path(path)
        with store_errors("load checkpoint", path):
            return self._open_at(path, safe)

    def _open_at(self, path: str, safe: bool) -> Any:
        fs, root = filesystem(path)
        shown = os.fspath(path)
        if not fs.exists(root):
            raise CheckpointError(
                f"no checkpoint at {shown!r}: the path does not exist", path, reason="not-found"
            )
        if not fs.isdir(root):
            raise CheckpointError(
                f"cannot load checkpoint {shown!r}: it is a file, and a distributed checkpoint "
                "is a directory; load a single-file checkpoint with the 'torch' plugin",
                shown,
                reason="unreadable",
            )
        dirs = data_directories(fs, root)
        keys: list[list[Any]] = []
        empty: list[list[Any]] = []
        if fs.exists(f"{root}/{MARKER}"):
            marker = read_marker(fs, root, shown, marker_limit(fs, root, dirs))
            name, keys, empty = marker["data"], marker["keys"], marker["empty"]
            if name not in dirs:
                raise CheckpointError(
                    f"cannot load checkpoint {shown!r}: its marker names {name}/, which is "
                    "missing (removed by hand, or copied without it)",
                    shown,
                    reason="unreadable",
                )
            unfinished = [d for d in dirs if d != name]
            if unfinished:
                warnings.warn(
                    f"{shown!r}: {', '.join(unfinished)} is left from a save that did not "
                    f"finish; it was not loaded (the committed {name} was), and the next save "
                    "there removes it",
                    PluginRegistryWarning,
                    stacklevel=4,
                )
            data = f"{root}/{name}"
        elif fs.exists(f"{root}/{_DCP_METADATA}"):
            data = root  # a plain DCP checkpoint: its .metadata is written last
        elif dirs:
            raise CheckpointError(
                f"no complete checkpoint at {shown!r}: a save began ({', '.join(dirs)}) but never "
                f"committed ({MARKER} is missing), so its shards may be partial; save again, "
                "or remove it",
                path,
                reason="incomplete",
            )
        else:
            raise CheckpointError(
                f"cannot load checkpoint {shown!r}: the directory holds no distributed "
                f"checkpoint (neither {MARKER} nor DCP's {_DCP_METADATA})",
                shown,
                reason="unreadable",
            )
        local, remote = _reader_classes()
        reader = local(data) if is_local(fs) else remote(fs.unstrip_protocol(data))
        reader.safe, reader.shown = safe, shown
        try:
            reader.metadata = reader.read_metadata()
            reader.open_all()
        except CheckpointError:
            reader.close()
            raise
        except pickle.UnpicklingError as exc:
            reader.close()
            raise self._refused(shown, str(exc)) from exc
        except (OSError, EOFError, ValueError, AttributeError) as exc:
            reader.close()
            raise CheckpointError(
                f"cannot load checkpoint {shown!r}: its metadata is damaged "
                f"({type(exc).__name__}: {exc})",
                shown,
                reason="unreadable",
            ) from exc
        reader.shown, reader.keys, reader.empty = shown, keys, empty
        return reader

    @staticmethod
    def _refused(shown: str, detail: str) -> CheckpointError:
        return CheckpointError(
            f"{shown!r} holds objects that a weights_only load refuses ({detail}). If you "
            "trust the whole checkpoint, load it with weights_only=False "
            "(DistributedCheckpointIO(weights_only=False) or load_checkpoint(..., "
            "weights_only=False))",
            shown,
            reason="refused",
        )

    def _read(self, reader: Any, state: dict[str, Any] | None, map_location: Any) -> dict[str, Any]:
        from torch.distributed.checkpoint.api import CheckpointException
        from torch.distributed.checkpoint.state_dict_loader import _load_state_dict, load

        into, everything = _planner_classes()
        metadata = reader.metadata
        # The metadata is read: hand it to DCP instead of reading it again.
        reader.read_metadata = lambda *args, **kwargs: metadata
        try:
            if state is None:
                planner = everything()
                planner.safe = reader.safe
                loaded: dict[str, Any] = {}
                with single_process_quiet(None):
                    _load_state_dict(loaded, reader, planner=planner, no_dist=True)
                restore_shape(loaded, reader.keys, reader.empty)
                if map_location not in (None, "cpu"):
                    loaded = _to(loaded, map_location)
                return loaded
            planner = into()
            planner.safe = reader.safe
            group = self._group()
            with single_process_quiet(group):
                load(state, storage_reader=reader, planner=planner, process_group=group,
                     no_dist=group is None)  # fmt: skip
            return state
        except (Exception, CheckpointException) as exc:  # DCP raises many types
            cause = _first_failure(exc)
            if isinstance(cause, pickle.UnpicklingError):
                raise self._refused(reader.shown, str(cause).splitlines()[0]) from exc
            raise CheckpointError(
                f"cannot load checkpoint {reader.shown!r}: {_load_cause(exc)}",
                reader.shown,
                reason="unreadable",
            ) from exc

    # -- removing --------------------------------------------------------------------------

    def remove_checkpoint(self, path: PathLike) -> None:
        """Delete the checkpoint: its marker first (it stops being a checkpoint at once),
        then its data. A load that has begun on this machine still reads whole; a
        missing path is not an error, and ranks may all call it."""
        path = checked_path(path)
        self._join_tidying()
        with store_errors("remove checkpoint", path):
            self._remove(path)

    @staticmethod
    def _remove(path: str) -> None:
        """Only what a checkpoint of this IO is made of: the marker (first), the data
        directories, DCP's metadata and shards, the marker's temporaries. Anything
        else in the directory stays, and so does the directory then."""
        fs, root = filesystem(path)
        refuse_bucket(fs, root, path)
        if remove_link(fs, root):
            return
        try:
            if fs.isfile(root):
                raise CheckpointError(
                    f"{path!r} is a file, not a distributed checkpoint (a directory): nothing "
                    "was removed; remove it with the checkpoint IO that wrote it",
                    path,
                )
            names = [str(e).rstrip("/").rsplit("/", 1)[-1] for e in fs.ls(root, detail=False)]
        except FileNotFoundError:
            return
        ours = [n for n in names if _belongs_to_a_checkpoint(n)]
        if len(ours) < len(names) and not any(_marks_a_checkpoint(n) for n in names):
            # A warning, not an error: another rank may have removed the checkpoint
            # already, leaving the user's files.
            warnings.warn(
                f"{path!r} holds no distributed checkpoint (no {MARKER}, {_DCP_METADATA} or "
                f"{DATA_PREFIX}*/ in it): nothing was removed",
                PluginRegistryWarning,
                stacklevel=3,
            )
            return
        for name in sorted(ours, key=lambda n: n != MARKER):  # the marker first
            with contextlib.suppress(FileNotFoundError):
                fs.rm(f"{root}/{name}", recursive=True)
        with contextlib.suppress(OSError):  # not empty: the user's files stay
            if is_local(fs):
                os.rmdir(root)
            elif not fs.ls(root, detail=False):
                fs.rmdir(root)


def _marks_a_checkpoint(name: str) -> bool:
    return name in (MARKER, _DCP_METADATA) or name.startswith(DATA_PREFIX)


def _belongs_to_a_checkpoint(name: str) -> bool:
    """A name a save of this IO (or DCP's own) writes into a checkpoint directory."""
    return (
        _marks_a_checkpoint(name)
        or name.endswith(".distcp")
        or (name.startswith(f".{MARKER}.") and name.endswith(".tmp"))
    )


def _first_failure(exc: BaseException) -> BaseException:
    """The first rank's exception inside DCP's CheckpointException (else ``exc``)."""
    from torch.distributed.checkpoint.api import CheckpointException

    if isinstance(exc, CheckpointException) and exc.failures:
        cause = next(iter(exc.failures.values()))
        return cause[0] if isinstance(cause, tuple) else cause
    return exc


def _load_cause(exc: BaseException) -> str:
    from torch.distributed.checkpoint.api import CheckpointException

    if isinstance(exc, CheckpointException) and exc.failures:
        rank = next(iter(exc.failures))
        return f"rank {rank} failed ({_load_cause(_first_failure(exc))})"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "Missing key in checkpoint state_dict" in text:
        key = text.rpartition(":")[2].strip().rstrip(".")
        return (
            f"the state to load into has {key!r}, which the checkpoint lacks; leave it out of "
            "state=, or load without state= to see what the checkpoint holds"
        )
    if "mismatch sizes" in text or "Size mismatch" in text:
        return f"a tensor's shape differs from the checkpoint's ({text})"
    return f"{type(exc).__name__}: {text}"


def _to(value: Any, device: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    if isinstance(value, list):
        return [_to(v, device) for v in value]
    if isinstance(value, tuple):
        return type(value)(_to(v, device) for v in value)
    return value
