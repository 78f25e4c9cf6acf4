"""Checkpoints written by torch.save through gzip, bz2 or lzma, atomically."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import tempfile
from typing import Any

from plugin_registry.kinds.checkpoint_io import CheckpointIO, PathLike

_CODECS = {"gzip": gzip, "bz2": bz2, "lzma": lzma}


class CompressedCheckpointIO(CheckpointIO):
    """torch.save, compressed; written to a temporary file and renamed into place."""

    def __init__(self, codec: str = "gzip", level: int = 6) -> None:
        if codec not in _CODECS:
            raise ValueError(f"unknown codec {codec!r}; choose one of {', '.join(_CODECS)}")
        self.codec = codec
        self.level = level

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
        torch.save(checkpoint, buffer)
        payload = self._compress(buffer.getvalue())
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        # A crash mid-write leaves the previous checkpoint: write aside, fsync, rename.
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".$prefix-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    def load_checkpoint(
        self, path: PathLike, map_location: Any = "cpu", weights_only: bool | None = None
    ) -> dict[str, Any]:
        import torch

        with open(path, "rb") as fh:
            data = _CODECS[self.codec].decompress(fh.read())
        # Safe by default: arbitrary pickled objects load only when the caller opts in.
        safe = True if weights_only is None else weights_only
        loaded: dict[str, Any] = torch.load(
            io.BytesIO(data), map_location=map_location, weights_only=safe
        )
        return loaded

    def remove_checkpoint(self, path: PathLike) -> None:
        os.remove(path)
