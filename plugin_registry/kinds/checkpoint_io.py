"""The checkpoint-IO kind: how a checkpoint dict reaches storage and comes back."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any

from plugin_registry.errors import CheckpointError as CheckpointError

PathLike = str | os.PathLike[str]

#: What a checkpoint IO record ``provides`` when every rank writes its own shards and
#: loads reshard (``torch.distributed.checkpoint``): the resolver chooses such a plugin
#: when the strategy shards parameters (FSDP, DeepSpeed stage 3), and only then unless
#: it is named, since a plain strategy has nothing to shard.
SHARDED_CHECKPOINT = "sharded-checkpoint"


class CheckpointIO(ABC):
    """Save, load and remove checkpoints: the interface of Lightning's ``CheckpointIO``."""

    def __repr__(self) -> str:
        # The constructor's arguments, so that a log line says which plugin this is.
        from plugin_registry.kinds._repr import plugin_repr

        return plugin_repr(self)

    @abstractmethod
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: PathLike, storage_options: Any | None = None
    ) -> None:
        """Write ``checkpoint`` (tensors and plain values) to ``path``.

        Called by the training loop at each checkpoint; must not change
        ``checkpoint``. ``storage_options`` are the plugin's own extras.
        """

    @abstractmethod
    def load_checkpoint(
        self, path: PathLike, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Read the checkpoint at ``path``; tensors go to ``map_location``.

        Callers that leave it out get the plugin's default: the built-ins (like
        Lightning's ``TorchCheckpointIO``) load onto the CPU, since every rank of a
        resumed GPU job would otherwise load the whole checkpoint onto the device that
        saved it; None means where each tensor was saved.

        ``weights_only`` None means the plugin's safe default (no arbitrary
        unpickling); a caller opts out with ``weights_only=False``.
        """

    @abstractmethod
    def remove_checkpoint(self, path: PathLike) -> None:
        """Delete the checkpoint at ``path``."""

    def teardown(self) -> None:
        """Release resources (threads, handles); called when training ends."""
