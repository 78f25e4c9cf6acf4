"""FSDPPrecision ("fsdp-<precision>"): the precision side of Fully Sharded Data Parallel."""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import TYPE_CHECKING, Any

from builtin_plugins.precision.formats import check_precision, convert_floating, default_dtype
from builtin_plugins.precision.mixed import default_device
from builtin_plugins.precision.scaling import LossScaling
from plugin_registry.kinds.precision import FAMILY_PRECISIONS

if TYPE_CHECKING:
    from torch.nn import Module

FSDP_PRECISIONS = FAMILY_PRECISIONS["fsdp"]


class FSDPPrecision(LossScaling):
    """The FSDP mixed-precision policy, contexts and (for 16-mixed) a sharded grad scaler.

    :attr:`mixed_precision_config` is the ``torch.distributed.fsdp.MixedPrecision``
    to wrap the model with. A scaler given by the caller is used as it is (Lightning's
    checks its own attribute before setting it, and so rejects any scaler).
    Autocast runs on ``device`` (default: the first available), so mixed precision
    also works with FSDP on the CPU.
    """

    def __init__(
        self, precision: str = "32-true", scaler: Any | None = None, device: str | None = None
    ) -> None:
        import torch

        self.precision = check_precision(precision, FSDP_PRECISIONS, "FSDPPrecision")
        if scaler is not None and self.precision != "16-mixed":
            raise ValueError(
                f"precision={self.precision!r} needs no gradient scaler, but one was given; "
                "drop it, or use precision='16-mixed'"
            )
        if scaler is None and self.precision == "16-mixed":
            from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

            scaler = ShardedGradScaler(device=device or default_device())
        self.scaler = scaler
        self.device = device or default_device()
        low = {"16": torch.float16, "bf16": torch.bfloat16, "32": torch.float32}
        self._low = low[self.precision.split("-")[0]]
        # Parameters stay float32 in the mixed modes; the true modes hold them low.
        self._param_dtype = self._low if self.precision.endswith("-true") else torch.float32

    @property
    def mixed_precision_config(self) -> Any:
        """``torch.distributed.fsdp.MixedPrecision`` for this precision value.

        As Lightning's, it warns (on rank 0) that ``16-true``/``bf16-true`` compute in
        the lower precision while FSDP keeps a full-precision copy for sharding.
        """
        from torch.distributed.fsdp import MixedPrecision as FSDPMixedPrecision

        if self.precision in ("16-true", "bf16-true") and _rank() == 0:
            warnings.warn(
                f"FSDP with {self.precision!r} enables computation in lower precision. FSDP "
                "will always retain a full-precision copy of the model parameters for sharding.",
                UserWarning,
                stacklevel=2,
            )

        return FSDPMixedPrecision(
            param_dtype=self._low, reduce_dtype=self._low, buffer_dtype=self._low
        )

    def convert_module(self, module: Module) -> Module:
        if self.precision.endswith("-true"):
            return module.to(dtype=self._param_dtype)
        return module

    def tensor_init_context(self) -> contextlib.AbstractContextManager[Any]:
        return default_dtype(self._param_dtype)

    def module_init_context(self) -> contextlib.AbstractContextManager[Any]:
        return self.tensor_init_context()

    def forward_context(self) -> contextlib.AbstractContextManager[Any]:
        import torch

        if self.precision.endswith("-mixed"):
            return torch.autocast(self.device, dtype=self._low)
        return self.tensor_init_context()

    def convert_input(self, data: Any) -> Any:
        return convert_floating(data, self._param_dtype)

    def convert_output(self, data: Any) -> Any:
        import torch

        return convert_floating(data, torch.get_default_dtype())


def _rank() -> int:
    """This process's global rank: the process group's, else the launcher's variables."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return int(dist.get_rank())
    for name in ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK", "LOCAL_RANK"):
        value = os.environ.get(name, "")
        if value.isascii() and value.isdigit():
            return int(value)
    return 0
