"""TorchCheckpointIO: torch.save / torch.load, atomic and durable, safe by default."""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import re
import stat
import threading
import zipfile
from collections.abc import Iterator
from typing import Any

# Imported with the plugin, not at its first save: that may run in the async IO's
# thread, where a first import races the caller's (CPython then hands one thread a
# half-initialised module).
import fsspec
from fsspec.implementations.local import LocalFileSystem

from plugin_registry.files import atomic_write
from plugin_registry.kinds.checkpoint_io import (
    CheckpointError,
    CheckpointIO,
    PathLike,
    save_failure,
)

_CRC32_LOCK = threading.Lock()


@contextlib.contextmanager
def without_crc32() -> Iterator[None]:
    """``torch.save`` without the zip CRC32 of every record, inside this block.

    ``torch.load`` never checks those checksums (a flipped byte loads silently
    either way), so computing them costs a third of a save for nothing; they
    matter only to tools that test zip archives (``unzip -t``). The switch is
    torch's global one: set around the block only, under a lock.
    """
    import torch

    if not hasattr(torch.serialization, "set_crc32_options"):  # torch < 2.5
        yield
        return
    with _CRC32_LOCK:
        before = torch.serialization.get_crc32_options()
        torch.serialization.set_crc32_options(False)
        try:
            yield
        finally:
            torch.serialization.set_crc32_options(before)


def filesystem(path: PathLike, storage_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """The fsspec filesystem and the path within it; local paths stay local."""
    fs, fspath = fsspec.core.url_to_fs(os.fspath(path), **(storage_options or {}))
    return fs, fspath


def checked_path(path: PathLike) -> str:
    """``path`` as a string; CheckpointError for an empty path or one with a NUL byte."""
    try:
        text = os.fspath(path)
    except TypeError as exc:
        raise CheckpointError(
            f"a checkpoint path must be a str or os.PathLike, got {type(path).__name__}", str(path)
        ) from exc
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if not text.strip():
        raise CheckpointError("the checkpoint path is empty; pass a file path or URL", text)
    if "\0" in text:
        raise CheckpointError(
            f"the checkpoint path {text!r} contains a NUL byte, which no filesystem accepts", text
        )
    return text


def upload(fs: Any, fspath: str, data: bytes, path: PathLike) -> None:
    """Put ``data`` at ``fspath`` in one request: an object store makes it visible only
    once the whole upload completed (a multipart upload only at its completion), so a
    cut-short upload never replaces the previous object."""
    with store_errors("save checkpoint to", path):
        parent = fspath.rsplit("/", 1)[0]
        if parent and parent != fspath:
            fs.makedirs(parent, exist_ok=True)
        fs.pipe_file(fspath, data)


@contextlib.contextmanager
def store_errors(doing: str, path: PathLike) -> Iterator[None]:
    """A storage client's own exception types (botocore's, aiohttp's) as CheckpointError;
    OSError (what fsspec translates) and CheckpointError pass as they are."""
    try:
        yield
    except (OSError, CheckpointError):
        raise
    except Exception as exc:
        raise CheckpointError(remote_failure(doing, path, exc), path) from exc


def remote_failure(doing: str, path: PathLike, exc: BaseException) -> str:
    """A store or network failure, named with the client's own words."""
    first = str(exc).splitlines()[0] if str(exc) else ""
    after = "; the previous checkpoint there, if any, is intact" if doing.startswith("save") else ""
    return (
        f"cannot {doing} {os.fspath(path)!r}: the storage failed "
        f"({type(exc).__name__}: {first}){after}"
    )


def is_local(fs: Any) -> bool:
    return isinstance(fs, LocalFileSystem)


def refuse_bucket(fs: Any, fspath: str, shown: str, done: str = "removed") -> None:
    """A bucket, the top of an object store, is never a checkpoint: removing one would
    take every object in it, and a save there would spread a checkpoint over it (or
    fail in the store's own words). ``done``: what did not happen ("removed", "saved")."""
    if not is_local(fs) and "/" not in fspath.strip("/"):
        raise CheckpointError(
            f"{shown!r} is a bucket (the top of the store), not a checkpoint: nothing was "
            f"{done}; name the checkpoint inside it (s3://bucket/run/step-10)",
            shown,
        )


def remove_link(fs: Any, fspath: str) -> bool:
    """Remove ``fspath`` if it is a symbolic link (itself, never what it points at)."""
    if not (is_local(fs) and os.path.islink(fspath)):
        return False
    with contextlib.suppress(FileNotFoundError):
        os.unlink(fspath)
    return True


def open_regular(fspath: str, shown: str) -> int:
    """A blocking descriptor on the regular file at ``fspath``.

    Opened non-blocking and checked on the descriptor: a FIFO planted where a
    checkpoint file should be would otherwise hang the load forever waiting for
    a writer, and a device would be read as if it were one. FileNotFoundError
    passes through; anything but a regular file is an unreadable CheckpointError.
    """
    fd = os.open(fspath, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CheckpointError(
                f"cannot load checkpoint {shown!r}: {fspath!r} is not a regular file (a FIFO, "
                "device, socket or directory); a checkpoint is made of regular files only",
                shown,
                reason="unreadable",
            )
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def require_regular(fspath: str, shown: str) -> None:
    """:func:`open_regular`'s check, for a reader that opens the file itself."""
    os.close(open_regular(fspath, shown))


def describe_file(head: bytes, size: int) -> str:
    """A guess at what a file that torch.load rejected actually is."""
    if size == 0:
        return "the file is empty (a save that never finished, or a file written by another tool)"
    if head.startswith(b"PK\x03\x04"):
        return "it is a zip archive, as torch.save writes, but cut short or damaged (truncated?)"
    if head.startswith(b"\x93NUMPY"):
        return "it is a NumPy .npy file, written by another tool; read it with numpy.load"
    if head.startswith(b"\x89HDF"):
        return "it is an HDF5 file (Keras/h5py), written by another tool"
    if head.startswith(b"\x1f\x8b"):
        return "it is gzip-compressed; decompress it first or use a plugin that does"
    if len(head) >= 10 and head[8:10] == b'{"':
        return "it is a safetensors file; load it with safetensors.torch.load_file"
    if head[:1] in (b"{", b"["):
        return "it looks like JSON text, not a torch checkpoint"
    if head.startswith(b"\x80"):
        return "it is a pickle (the legacy torch format) that is cut short or damaged"
    return f"it is not a torch checkpoint (it starts with {head[:8]!r})"


def _looks_like_torch(fs: Any, fspath: str) -> bool:
    """A zip archive or a pickle: what torch.save writes (new and legacy formats)."""
    with fs.open(fspath, "rb") as fh:
        head = fh.read(4)
    return bytes(head).startswith((b"PK\x03\x04", b"\x80"))


def _os_error_in_chain(exc: BaseException) -> OSError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


class TorchCheckpointIO(CheckpointIO):
    """Checkpoints written with ``torch.save`` and read with ``torch.load``.

    * **Atomic and durable** on a local filesystem: the checkpoint is written to a
      temporary file beside the target, fsynced, renamed over the target, and the
      directory is fsynced. A crash at any moment leaves the previous checkpoint or
      the new one, complete. On other fsspec filesystems the checkpoint is
      serialised in memory and written with one ``pipe_file`` (atomic where the
      store's single put is, as on object stores and ``memory://``).
    * **Safe by default**: ``weights_only=True`` unless the constructor or the call
      says otherwise; a checkpoint that needs unsafe unpickling is a
      :class:`CheckpointError` that says how to opt out.
    * ``mmap=True`` maps local zip-format checkpoints instead of reading them
      (ignored, where the format does not allow it).
    * **At the disk's speed**: the zip CRC32 that ``torch.load`` never checks is
      not computed (``crc32=True`` computes it, for zip tools), and a replaced
      file's blocks are freed after the save returns, not inside it.
    """

    def __init__(
        self,
        weights_only: bool = True,
        mmap: bool = False,
        durable: bool = True,
        crc32: bool = False,
    ) -> None:
        self.weights_only = weights_only
        self.mmap = mmap
        self.durable = durable
        self.crc32 = crc32

    def _save(self, checkpoint: dict[str, Any], fh: Any) -> None:
        import torch

        if self.crc32:
            torch.save(checkpoint, fh)
            return
        with without_crc32():
            torch.save(checkpoint, fh)

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: PathLike, storage_options: Any | None = None
    ) -> None:
        """Write ``checkpoint``; on failure the previous file at ``path`` is untouched."""

        path = checked_path(path)
        fs, fspath = filesystem(path, storage_options)
        refuse_bucket(fs, fspath, path, "saved")
        try:
            if is_local(fs):
                atomic_write(fspath, lambda fh: self._save(checkpoint, fh), durable=self.durable)
            else:
                buffer = io.BytesIO()
                self._save(checkpoint, buffer)
                upload(fs, fspath, buffer.getvalue(), path)
        except OSError as exc:
            raise CheckpointError(save_failure(path, exc), path) from exc
        except RuntimeError as exc:
            # torch's zip writer turns a failed write into a RuntimeError; the
            # OSError behind it (a full disk, say) is in the context chain.
            os_error = _os_error_in_chain(exc)
            if os_error is None:
                raise CheckpointError(
                    f"cannot save checkpoint to {os.fspath(path)!r}: torch.save failed ({exc}); "
                    "the previous checkpoint there, if any, is intact",
                    path,
                ) from exc
            raise CheckpointError(save_failure(path, os_error), path) from exc
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise CheckpointError(
                f"cannot save checkpoint to {os.fspath(path)!r}: it holds an object torch.save "
                f"cannot serialise ({type(exc).__name__}: {exc}); the previous checkpoint there, "
                "if any, is intact",
                path,
            ) from exc

    def load_checkpoint(
        self,
        path: PathLike,
        map_location: Any = "cpu",
        weights_only: bool | None = None,
        mmap: bool | None = None,
    ) -> dict[str, Any]:
        """Read the checkpoint at ``path``, refusing arbitrary objects unless told."""
        import torch

        safe = self.weights_only if weights_only is None else weights_only
        use_mmap = self.mmap if mmap is None else mmap
        path = checked_path(path)
        fs, fspath = filesystem(path)
        shown = os.fspath(path)
        with store_errors("load checkpoint", path):
            found, directory = fs.exists(fspath), fs.isdir(fspath)
            data = None if is_local(fs) or not found or directory else fs.cat_file(fspath)
        if not found:
            raise CheckpointError(
                f"no checkpoint at {shown!r}: the path does not exist", path, reason="not-found"
            )
        if directory:
            raise CheckpointError(
                f"{shown!r} is a directory, not a checkpoint file; pass the file inside it "
                "(a sharded checkpoint, with checkpoint.json or .metadata, loads with the "
                "'distributed' plugin)",
                path,
            )
        if data is None:
            require_regular(fspath, shown)
        try:
            if data is None:
                mappable = use_mmap and zipfile.is_zipfile(fspath)
                loaded = torch.load(
                    fspath, map_location=map_location, weights_only=safe, mmap=mappable or None
                )
            else:
                loaded = torch.load(io.BytesIO(data), map_location=map_location, weights_only=safe)
        except pickle.UnpicklingError as exc:
            if safe and "Weights only load failed" in str(exc) and _looks_like_torch(fs, fspath):
                raise CheckpointError(_refused(shown, str(exc)), path, reason="refused") from exc
            raise self._unreadable(fs, fspath, shown, exc) from exc
        except (RuntimeError, EOFError, ValueError, OSError) as exc:
            raise self._unreadable(fs, fspath, shown, exc) from exc
        result: dict[str, Any] = loaded
        return result

    @staticmethod
    def _unreadable(fs: Any, fspath: str, shown: str, exc: BaseException) -> CheckpointError:
        first = str(exc).splitlines()[0] if str(exc) else ""
        if "Attempting to deserialize object on" in first:
            return CheckpointError(
                f"cannot load checkpoint {shown!r}: its tensors were saved on a device this "
                f"machine lacks ({first}); load it with map_location='cpu' (the default) or "
                "a device that exists here",
                shown,
                reason="unreadable",
            )
        try:
            with fs.open(fspath, "rb") as fh:
                head = fh.read(16)
            size = fs.size(fspath)
            cause = describe_file(head, size)
        except OSError:
            cause = "it cannot be read"
        # The type torch raised stays visible to except clauses written for it.
        return CheckpointError(
            f"cannot load checkpoint {shown!r}: {cause} ({type(exc).__name__}: {first})",
            shown,
            reason="unpicklable" if isinstance(exc, pickle.UnpicklingError) else "unreadable",
        )

    def remove_checkpoint(self, path: PathLike) -> None:
        """Delete the checkpoint (file or directory); a missing path is not an error."""
        path = checked_path(path)
        fs, fspath = filesystem(path)
        refuse_bucket(fs, fspath, path)
        if remove_link(fs, fspath):
            return
        with store_errors("remove checkpoint", path):
            if fs.exists(fspath):
                fs.rm(fspath, recursive=True)


def _refused(shown: str, message: str) -> str:
    """A weights_only refusal, keeping torch's useful line: which global, and how to allow it."""
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", message)
    trust_file = (
        "if you trust the whole file, load it with weights_only=False "
        "(TorchCheckpointIO(weights_only=False) or load_checkpoint(..., weights_only=False))"
    )
    if found:
        name = found[1]
        return (
            f"{shown!r} holds objects that a weights_only load refuses: Unsupported global: "
            f"GLOBAL {name}. If you trust that class, allow it with "
            f"torch.serialization.add_safe_globals([{name}]) (or the "
            f"torch.serialization.safe_globals([{name}]) context manager); {trust_file}"
        )
    lines = [ln.strip() for ln in message.splitlines() if "WeightsUnpickler error" in ln]
    detail = lines[0].partition("WeightsUnpickler error:")[2].strip() if lines else ""
    return (
        f"{shown!r} holds objects that a weights_only load refuses"
        + (f": {detail}" if detail else "")
        + f". {trust_file[0].upper()}{trust_file[1:]}"
    )
