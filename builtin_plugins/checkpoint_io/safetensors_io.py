"""SafetensorsCheckpointIO ("safetensors"): tensor-only checkpoints, atomic, loaded by mmap.

safetensors stores a flat ``{name: tensor}`` table and a string-to-string metadata
header, and cannot run code on load. Nested state dicts (``{"model": {"w": ...}}``)
are flattened with their key paths kept in the header, so a load gives back the
same nesting even when a key contains the separator.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from builtin_plugins.checkpoint_io.torch_io import (
    checked_path,
    open_regular,
    require_regular,
)
from plugin_registry.files import atomic_write
from plugin_registry.kinds.checkpoint_io import (
    CheckpointError,
    CheckpointIO,
    PathLike,
    save_failure,
)

#: The header entry that holds each flat name's key path (JSON).
_KEYS = "plugin_registry.keys"


def _flatten(
    checkpoint: Mapping[str, Any], separator: str, shown: str
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """``{joined name: tensor}`` and ``{joined name: key path}``; non-tensors refused."""
    import torch

    flat: dict[str, Any] = {}
    paths: dict[str, list[str]] = {}

    def walk(value: Any, path: list[str]) -> None:
        name = separator.join(path)
        if isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise CheckpointError(
                        f"cannot save {shown!r} as safetensors: key {key!r} under "
                        f"{name or 'the top level'!r} is not a string",
                        shown,
                    )
                walk(item, [*path, key])
            return
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"cannot save {shown!r} as safetensors: {name!r} is a "
                f"{type(value).__name__}, and safetensors holds tensors only; store it as a "
                "tensor (torch.tensor(value)), or use the 'torch' checkpoint IO",
                shown,
            )
        if name in flat:
            raise CheckpointError(
                f"cannot save {shown!r} as safetensors: two keys join to {name!r}; "
                "use another separator (SafetensorsCheckpointIO(separator=...))",
                shown,
            )
        flat[name] = value
        paths[name] = path

    walk(checkpoint, [])
    return flat, paths


def _check_no_shared_storage(flat: Mapping[str, Any], shown: str) -> None:
    """safetensors cannot store two names over one storage (tied weights, views)."""
    seen: dict[tuple[str, int], str] = {}
    for name, tensor in flat.items():
        if tensor.numel() == 0:
            continue
        storage = tensor.untyped_storage()
        key = (str(tensor.device), storage.data_ptr())
        if key in seen:
            raise CheckpointError(
                f"cannot save {shown!r} as safetensors: {seen[key]!r} and {name!r} share "
                "memory (tied weights or views); save one of them, or .clone() the other",
                shown,
            )
        seen[key] = name


def _header(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of safetensors bytes that ``safetensors.torch.load`` accepted."""
    size = int.from_bytes(data[:8], "little")
    meta = json.loads(data[8 : 8 + size]).get("__metadata__") or {}
    return {k: v for k, v in meta.items() if isinstance(k, str) and isinstance(v, str)}


def _damaged(shown: str, what: str) -> CheckpointError:
    return CheckpointError(
        f"cannot load checkpoint {shown!r}: its {_KEYS} header is damaged ({what}); the "
        "tensors are there, but not their nesting: save the checkpoint again",
        shown,
        reason="unreadable",
    )


def _key_paths(header: Mapping[str, str], shown: str) -> dict[str, list[str]]:
    """The key path of each flat name, as the header records it (checked: it is read
    from a file, and whoever wrote the file chose it)."""
    if _KEYS not in header:
        return {}
    try:
        paths = json.loads(header[_KEYS])
    except RecursionError:
        raise _damaged(shown, "nested too deeply") from None
    except ValueError as exc:
        raise _damaged(shown, f"not JSON: {str(exc).splitlines()[0]}") from None
    if not isinstance(paths, dict):
        raise _damaged(shown, f"a JSON {type(paths).__name__}, not an object")
    for name, path in paths.items():
        if not (isinstance(path, list) and path and all(isinstance(k, str) for k in path)):
            raise _damaged(shown, f"the key path of {name!r} is not a list of strings")
    return paths


def _unflatten(
    flat: Mapping[str, Any], paths: Mapping[str, list[str]], shown: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    owner: dict[tuple[str, ...], str] = {}  # key path -> the tensor at it

    def collision(name: str, path: list[str]) -> CheckpointError:
        other = next(
            (n for p, n in owner.items() if p[: len(path)] == tuple(path[: len(p)])), "another"
        )
        return _damaged(shown, f"{name!r} and {other!r} claim the same key path {path!r}")

    for name, tensor in flat.items():
        path = paths.get(name, [name])
        node = out
        for depth, key in enumerate(path[:-1]):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):  # a tensor is where a dict should be
                raise collision(name, path[: depth + 1])
            node = child
        if path[-1] in node:  # another tensor, or a dict of them, is there
            raise collision(name, path)
        node[path[-1]] = tensor
        owner[tuple(path)] = name
    return out


class SafetensorsCheckpointIO(CheckpointIO):
    """Checkpoints of tensors (nested dicts allowed) in the safetensors format.

    * Saves are atomic and durable, as the ``torch`` IO's: a crash leaves the old
      file or the new one.
    * Loads map the file (no copy on the CPU) and never run code, so
      ``weights_only`` has nothing to refuse. A mapped tensor reads the file when
      it is used: a file truncated or overwritten in place later (not replaced, as
      this IO's saves replace it) kills the process with SIGBUS. ``mmap=False``
      (here or per load) reads the tensors into memory instead.
    * A value that is not a tensor, a non-string key, or two names sharing memory
      is a :class:`CheckpointError` naming the key.
    * ``storage_options={"metadata": {...}}`` (strings) is written into the header;
      :meth:`read_metadata` reads it back.
    """

    def __init__(self, separator: str = ".", durable: bool = True, mmap: bool = True) -> None:
        if not separator:
            raise ValueError("separator must be a non-empty string, e.g. '.'")
        if type(mmap) is not bool:
            raise TypeError(f"mmap must be True or False, got {mmap!r}")
        self.separator = separator
        self.durable = durable
        self.mmap = mmap

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: PathLike, storage_options: Any | None = None
    ) -> None:
        """Write ``checkpoint``; on failure the previous file at ``path`` is untouched."""
        from safetensors.torch import save

        shown = checked_path(path)
        flat, paths = _flatten(checkpoint, self.separator, shown)
        _check_no_shared_storage(flat, shown)
        metadata = dict((storage_options or {}).get("metadata") or {})
        bad = [k for k, v in metadata.items() if not (isinstance(k, str) and isinstance(v, str))]
        if bad or _KEYS in metadata:
            raise CheckpointError(
                f"cannot save {shown!r}: metadata must map strings to strings (not "
                f"{bad[0] if bad else _KEYS!r}); json.dumps other values",
                shown,
            )
        metadata[_KEYS] = json.dumps(paths)
        data = save({k: v.detach().contiguous().cpu() for k, v in flat.items()}, metadata)

        def write(fh: Any) -> None:
            fh.write(data)

        try:
            atomic_write(shown, write, durable=self.durable)
        except OSError as exc:
            raise CheckpointError(save_failure(shown, exc), shown) from exc

    def load_checkpoint(
        self,
        path: PathLike,
        map_location: Any = "cpu",
        weights_only: bool | None = None,
        mmap: bool | None = None,
    ) -> dict[str, Any]:
        """Read the tensors (mapped, not copied, on the CPU, unless ``mmap=False``) and
        restore their nesting.

        ``map_location`` is a device (``"cpu"``, ``"cuda:0"``, None for the CPU).
        """
        from safetensors import safe_open
        from safetensors.torch import load

        shown = checked_path(path)
        self._check_file(shown)
        device = "cpu" if map_location is None else str(map_location)
        mapped = self.mmap if mmap is None else mmap
        try:
            if mapped:
                with safe_open(shown, framework="pt", device=device) as fh:
                    header = fh.metadata() or {}
                    flat = {name: fh.get_tensor(name) for name in fh.keys()}  # noqa: SIM118
            else:
                fd = open_regular(shown, shown)
                with os.fdopen(fd, "rb") as stream:
                    data = stream.read()
                flat = {k: v.to(device) for k, v in load(data).items()}
                header = _header(data)
        except CheckpointError:
            raise
        except Exception as exc:  # safetensors raises its own SafetensorError
            raise CheckpointError(
                f"cannot load checkpoint {shown!r}: it is not a readable safetensors file "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                shown,
                reason="unreadable",
            ) from exc
        return _unflatten(flat, _key_paths(header, shown), shown)

    def read_metadata(self, path: PathLike) -> dict[str, str]:
        """The metadata given at save (``storage_options={"metadata": ...}``)."""
        from safetensors import safe_open

        shown = checked_path(path)
        self._check_file(shown)
        try:
            with safe_open(shown, framework="pt", device="cpu") as fh:
                header = dict(fh.metadata() or {})
        except Exception as exc:
            raise CheckpointError(
                f"cannot read the metadata of {shown!r}: {exc}", shown, reason="unreadable"
            ) from exc
        header.pop(_KEYS, None)
        return header

    def remove_checkpoint(self, path: PathLike) -> None:
        """Delete the checkpoint; a missing path is not an error."""
        shown = checked_path(path)
        if os.path.lexists(shown):
            os.remove(shown)

    @staticmethod
    def _check_file(shown: str) -> None:
        if not os.path.exists(shown):
            raise CheckpointError(
                f"no checkpoint at {shown!r}: the path does not exist", shown, reason="not-found"
            )
        if os.path.isdir(shown):
            raise CheckpointError(
                f"{shown!r} is a directory, not a safetensors file; pass the file inside it",
                shown,
                reason="unreadable",
            )
        require_regular(shown, shown)  # a FIFO would hang the read
