"""Lightning's ``CheckpointIO`` over a registry checkpoint plugin (atomic saves included)."""

from __future__ import annotations

from typing import Any

from lightning.fabric.plugins import CheckpointIO as _LightningCheckpointIO

from plugin_registry.kinds.checkpoint_io import CheckpointIO

__all__ = ["RegistryCheckpointIO"]


class RegistryCheckpointIO(_LightningCheckpointIO):
    """Lightning's ``CheckpointIO`` over a registry checkpoint plugin."""

    def __init__(self, plugin: CheckpointIO) -> None:
        self.plugin = plugin

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.plugin!r})"

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        self.plugin.save_checkpoint(checkpoint, path, storage_options)

    def load_checkpoint(
        self, path: Any, map_location: Any = "cpu", weights_only: bool | None = None
    ) -> dict[str, Any]:
        return self.plugin.load_checkpoint(path, map_location, weights_only=weights_only)

    def remove_checkpoint(self, path: Any) -> None:
        self.plugin.remove_checkpoint(path)

    def teardown(self) -> None:
        self.plugin.teardown()
