"""Checkpoints written by torch.save through gzip, bz2 or lzma, atomically."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import os
import pickle
from typing import Any

from plugin_registry.kinds.checkpoint_io import (
    CheckpointError,
    CheckpointIO,
    PathLike,
    open_checkpoint,
    write_checkpoint,
)

_CODECS = {"gzip": gzip, "bz2": bz2, "lzma": lzma}


class CompressedCheckpointIO(CheckpointIO):
    """torch.save, compressed; replaced all or nothing, as the built-in IOs do."""

    def __init__(self, codec: str = "gzip", level: int = 6) -> None:
        if codec not in _CODECS:
            raise ValueError(f"unknown codec {codec!r}; choose one of {', '.join(_CODECS)}")
        if not 1 <= int(level) <= 9:
            raise ValueError(f"level={level!r} is out of range: 1 (fastest) to 9 (smallest)")
        self.codec = codec
        self.level = int(level)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(codec={self.codec!r}, level={self.level})"

    def _compress(self, data: bytes) -> bytes:
        if self.codec == "lzma":
            return lzma.compress(data, preset=self.level)
        module: Any = _CODECS[self.codec]
        return bytes(module.compress(data, self.level))

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: PathLike, storage_options: Any | None = None
    ) -> None:
        import torch  # here, not at the top: listing never imports this module

        buffer = io.BytesIO()
        try:
            torch.save(checkpoint, buffer)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise CheckpointError(
                f"cannot save checkpoint to {os.fspath(path)!r}: it holds an object torch.save "
                f"cannot serialise ({exc}); the previous checkpoint there, if any, is intact",
                path,
            ) from exc
        payload = self._compress(buffer.getvalue())
        # A temporary beside the file, fsynced and renamed: a crash at any instant leaves
        # the previous checkpoint or this one; a failure raises CheckpointError.
        write_checkpoint(path, lambda fh: fh.write(payload))

    def load_checkpoint(
        self, path: PathLike, map_location: Any = "cpu", weights_only: bool | None = None
    ) -> dict[str, Any]:
        import torch

        with open_checkpoint(path) as fh:  # a CheckpointError (a FileNotFoundError) when missing
            raw = fh.read()
        try:
            data = _CODECS[self.codec].decompress(raw)
        except (OSError, EOFError, ValueError, lzma.LZMAError) as exc:
            raise CheckpointError(
                f"cannot load checkpoint {os.fspath(path)!r}: it is not {self.codec} data, or "
                f"is cut short ({exc})",
                path,
                reason="unreadable",
            ) from exc
        # Safe by default: arbitrary pickled objects load only when the caller opts in.
        safe = True if weights_only is None else weights_only
        loaded: dict[str, Any] = torch.load(
            io.BytesIO(data), map_location=map_location, weights_only=safe
        )
        return loaded

    def remove_checkpoint(self, path: PathLike) -> None:
        try:
            with contextlib.suppress(FileNotFoundError):  # already gone: nothing to do
                os.remove(path)
        except OSError as exc:
            shown = os.fspath(path)
            raise CheckpointError(f"cannot remove {shown!r}: {exc.strerror}", path) from exc
