"""XLACheckpointIO: the torch_xla semantics on top of the atomic torch writer."""

from __future__ import annotations

from typing import Any

from builtin_plugins.checkpoint_io.torch_io import TorchCheckpointIO
from plugin_registry.kinds.checkpoint_io import PathLike


class XLACheckpointIO(TorchCheckpointIO):
    """Saves XLA tensors as CPU tensors, written by the global main process only.

    As ``torch_xla.core.xla_model.save``: every process moves its tensors to the
    CPU, the process of global ordinal 0 writes (atomically, as
    :class:`TorchCheckpointIO`), and all processes meet at a rendezvous so that
    none reads the file before it is complete.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: PathLike, storage_options: Any | None = None
    ) -> None:
        import torch_xla.core.xla_model as xm

        cpu_checkpoint = xm._maybe_convert_to_cpu(checkpoint, convert=True)
        if xm.is_master_ordinal(local=False):
            super().save_checkpoint(cpu_checkpoint, path, storage_options)
        xm.rendezvous("plugin_registry.xla_checkpoint_io.save")
