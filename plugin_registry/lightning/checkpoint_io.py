"""Lightning's ``CheckpointIO`` over a registry checkpoint plugin (atomic saves included)."""

from __future__ import annotations

from typing import Any

from lightning.fabric.plugins import CheckpointIO as _LightningCheckpointIO

from plugin_registry.kinds.checkpoint_io import CheckpointIO

__all__ = ["RegistryCheckpointIO"]


class RegistryCheckpointIO(_LightningCheckpointIO):
    """Lightning's ``CheckpointIO`` over a registry checkpoint plugin.

    Indistinguishable from the plugin where Lightning's code looks: each call is passed
    on with the arguments Lightning gave, as Lightning gave them (``load_checkpoint(path,
    weights_only=None)``), and any attribute the adapter has not is the plugin's (an
    async plugin's ``checkpoint_io``, ``_base_checkpoint_io_configured``).
    """

    def __init__(self, plugin: CheckpointIO) -> None:
        self.plugin = plugin

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.plugin!r})"

    def __getattr__(self, name: str) -> Any:
        if name == "plugin":  # not yet set (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.plugin, name)

    def save_checkpoint(self, *args: Any, **kwargs: Any) -> None:
        self.plugin.save_checkpoint(*args, **kwargs)

    def load_checkpoint(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.plugin.load_checkpoint(*args, **kwargs)

    def remove_checkpoint(self, *args: Any, **kwargs: Any) -> None:
        self.plugin.remove_checkpoint(*args, **kwargs)

    def teardown(self) -> None:
        self.plugin.teardown()
