"""torch.save to a temporary file, fsync, rename: a crash never leaves half a checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from plugin_registry.kinds.checkpoint_io import CheckpointIO


class AtomicTorchIO(CheckpointIO):
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike[str], storage_options: Any = None
    ) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            torch.save(checkpoint, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)

    def load_checkpoint(
        self,
        path: str | os.PathLike[str],
        map_location: Any = None,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        safe = True if weights_only is None else weights_only
        loaded: dict[str, Any] = torch.load(path, map_location=map_location, weights_only=safe)
        return loaded

    def remove_checkpoint(self, path: str | os.PathLike[str]) -> None:
        Path(path).unlink(missing_ok=True)
