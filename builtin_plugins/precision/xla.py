"""XLAPrecision ("xla-<precision>"): training through torch_xla, in 32, 16 or bf16 bits."""

from __future__ import annotations

import os
from typing import Any

from builtin_plugins.precision.formats import WholeModelCast, check_precision
from plugin_registry.kinds.precision import FAMILY_PRECISIONS, Precision

XLA_PRECISIONS = FAMILY_PRECISIONS["xla"]
_FLAGS = {"16-true": "XLA_USE_F16", "bf16-true": "XLA_USE_BF16"}


class XLAPrecision(WholeModelCast, Precision):
    """The model, inputs and default dtype in the chosen format; steps through ``xm``.

    Like Lightning's it sets torch_xla's flag for the format (``XLA_USE_BF16`` or
    ``XLA_USE_F16``) -- and, since current torch_xla deprecates those, also casts the
    model and inputs itself. :meth:`teardown` puts the flag back as it found it
    (Lightning's removes it even if the user had set it). ``optimizer_step`` is
    ``xm.optimizer_step``, which all-reduces gradients across replicas and marks
    the step.
    """

    def __init__(self, precision: str = "32-true") -> None:
        import torch

        self.precision = check_precision(precision, XLA_PRECISIONS, "XLAPrecision")
        self._dtype = {
            "32-true": torch.float32,
            "16-true": torch.float16,
            "bf16-true": torch.bfloat16,
        }[self.precision]
        self._saved_env: dict[str, str | None] = {}
        flag = _FLAGS.get(self.precision)
        if flag is not None:
            self._saved_env[flag] = os.environ.get(flag)
            os.environ[flag] = "1"

    def optimizer_step(self, optimizer: Any, **kwargs: Any) -> Any:
        import torch_xla.core.xla_model as xm

        return xm.optimizer_step(optimizer, optimizer_args=kwargs, barrier=True)

    def teardown(self) -> None:
        for flag, value in self._saved_env.items():
            if value is None:
                os.environ.pop(flag, None)
            else:
                os.environ[flag] = value
        self._saved_env = {}
