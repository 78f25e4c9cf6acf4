"""bfloat16 autocast around the forward pass; weights and gradients stay float32."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from plugin_registry.kinds.precision import Precision


class BF16Autocast(Precision):
    precision = "bf16-mixed"

    def __init__(self, device: str = "cpu") -> None:
        self.device = device

    def forward_context(self) -> contextlib.AbstractContextManager[Any]:
        return torch.autocast(self.device, dtype=torch.bfloat16)

    def convert_output(self, data: Any) -> Any:
        if isinstance(data, torch.Tensor) and data.is_floating_point():
            return data.float()
        return data
