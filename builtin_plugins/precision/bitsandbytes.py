"""BitsandbytesPrecision: Linear layers quantized by bitsandbytes, on the CPU or CUDA.

Imported only when the plugin is loaded (the record requires bitsandbytes).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from typing import Any

import torch

from builtin_plugins.precision.formats import (
    UnsupportedChoiceError,
    check_precision,
    convert_floating,
    default_dtype,
)
from plugin_registry.kinds.precision import Precision


class _OptionalKernelNotice(logging.Filter):
    """Drops bitsandbytes' import-time notice that the optional Hub kernel for 4-bit CPU
    matmuls (``pip install kernels``) is absent: its own kernel is used instead, so the
    notice is noise on every load. Every other record of that logger passes."""

    PREFIX = "Failed to load CPU gemm_4bit_forward from kernels-community"

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.PREFIX)


logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_OptionalKernelNotice())

# Typed as Any: bitsandbytes' own annotations do not describe its Params/Linear classes.
bnb: Any = importlib.import_module("bitsandbytes")

MODES = ("nf4", "nf4-dq", "fp4", "fp4-dq", "int8", "int8-training")


def _target_device(layer: Any) -> torch.device:
    device = getattr(layer, "_materialize_on", None)
    return device if device is not None else torch.device("cpu")


def _take(state_dict: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Pop every entry under ``prefix`` (``weight`` and its quantization stats)."""
    keys = [k for k in state_dict if k == prefix or k.startswith(prefix + ".")]
    return {k[len(prefix) + 1 :] if k != prefix else "": state_dict.pop(k) for k in keys}


def _load_bias(layer: Any, state_dict: dict[str, Any], prefix: str) -> list[str]:
    """Materialise a meta bias from the state dict; the keys it took."""
    key = prefix + "bias"
    if key in state_dict and layer.bias is not None and layer.bias.device.type == "meta":
        layer.bias = torch.nn.Parameter(state_dict.pop(key).to(_target_device(layer)))
        return [key]
    return []


def _settle(missing: list[str], handled: list[str]) -> None:
    """What this layer took itself is not missing."""
    for key in handled:
        with contextlib.suppress(ValueError):
            missing.remove(key)


class QuantizedLinear4bit(bnb.nn.Linear4bit):  # type: ignore[misc]
    """Linear4bit that quantizes a full-precision weight it is loaded with, and takes
    back its own quantized state dict (which bitsandbytes' own layer refuses)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # On a CPU with AVX512-BF16, bitsandbytes' eval-mode forward rewrites the weight
        # in place into a CPU-only packed layout: the state dict then changes with a
        # validation pass and holds what no other machine reads, and a layer with fewer
        # than 64 inputs fails outright. The portable layout is kept.
        self.support_avx512bf16_for_cpu = False

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        entries = _take(state_dict, prefix + "weight")
        handled = [prefix + "weight"] if entries else []
        if entries:
            weight = entries.pop("")
            device = _target_device(self)
            if entries:  # already quantized: its absmax, quant_map, ... came along
                self.weight = bnb.nn.Params4bit.from_prequantized(
                    data=weight,
                    quantized_stats=entries,
                    requires_grad=False,
                    device=device,
                    module=self,
                )
            else:
                self.weight = bnb.nn.Params4bit(
                    weight.detach().to(torch.float32).contiguous(),
                    requires_grad=False,
                    quant_type=self.weight.quant_type,
                    compress_statistics=self.weight.compress_statistics,
                    blocksize=self.weight.blocksize,
                    module=self,
                ).to(device)
        handled += _load_bias(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args)
        _settle(args[2], handled)


class QuantizedLinear8bit(bnb.nn.Linear8bitLt):  # type: ignore[misc]
    """Linear8bitLt that quantizes a full-precision weight it is loaded with, and, when
    its weight trains (``int8-training``), from the current weight at every forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.state.has_fp16_weights:
            out: torch.Tensor = super().forward(x)
            return out
        # bitsandbytes re-quantizes a trainable weight only while its .grad is None; a
        # loop that zeroes gradients after the forward pass (Lightning's closure) would
        # have every forward use the int8 copy made at the first step.
        self.state.reset_grads()
        if x.device.type not in ("cpu", "xpu") or self.training:
            out = super().forward(x)
            return out
        # Its eval path for a trainable weight needs a kernel CPUs lack
        # (int8_double_quant); its training path computes the same product here.
        if self.bias is not None and self.bias.dtype != x.dtype:
            self.bias.data = self.bias.data.to(x.dtype)
        self.state.is_training = True
        out = bnb.matmul(x, self.weight, bias=self.bias, state=self.state)
        return out

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        key = prefix + "weight"
        incoming = state_dict.get(key)
        handled: list[str] = []
        if incoming is not None and incoming.dtype == torch.int8 and prefix + "SCB" in state_dict:
            # Already quantized: take the int8 rows and their scales as they are (loading
            # them through nn.Module, with assign=True, would drop the scales).
            weight = bnb.nn.Int8Params(
                incoming.to(_target_device(self)), requires_grad=False, has_fp16_weights=False
            )
            weight.CB = weight.data
            weight.SCB = state_dict.pop(prefix + "SCB").to(_target_device(self))
            self.weight = weight
            state_dict.pop(key)
            state_dict.pop(prefix + "weight_format", None)
            handled.append(key)
        elif incoming is not None:
            training = self.state.has_fp16_weights
            self.weight = bnb.nn.Int8Params(
                incoming.detach().to(torch.float32).contiguous(),
                requires_grad=training,
                has_fp16_weights=training,
            ).to(_target_device(self))
            state_dict.pop(key)
            handled.append(key)
        handled += _load_bias(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args)
        _settle(args[2], handled)


class BitsandbytesPrecision(Precision):
    """Replaces ``torch.nn.Linear`` layers with bitsandbytes' quantized layers.

    ``mode``: ``nf4`` / ``fp4`` (4-bit, ``-dq`` adds double quantization of the
    scales), ``int8`` (8-bit inference) or ``int8-training`` (8-bit matmuls, float
    weights kept for training). ``dtype`` is the compute dtype (default float32 on
    the CPU; on CUDA float16 for int8, else bfloat16 where supported).
    ``ignore_modules`` are name prefixes whose Linear layers stay as they are.

    Layers are quantized when they are converted (from their current weights) or,
    for a model built under :meth:`module_init_context` (on the meta device, no
    memory), when a state dict is loaded into them -- a full-precision state dict is
    quantized on the way in, a quantized one is taken as it is. Load with
    ``assign=True`` so the model's other meta parameters are materialised too.
    """

    def __init__(
        self,
        mode: str = "nf4",
        dtype: torch.dtype | None = None,
        ignore_modules: set[str] | None = None,
        device: str | None = None,
    ) -> None:
        self.mode = check_precision(
            mode, MODES, "BitsandbytesPrecision", "mode", error=UnsupportedChoiceError
        )
        self.precision = f"bitsandbytes-{self.mode}"
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dtype is None:
            if self.device.type != "cuda":
                dtype = torch.float32
            elif self.mode.startswith("int8") or not torch.cuda.is_bf16_supported():
                dtype = torch.float16
            else:
                dtype = torch.bfloat16
        if not dtype.is_floating_point:
            raise ValueError(
                f"dtype={dtype} is not a floating-point compute dtype; use "
                "torch.float32, torch.bfloat16 or torch.float16"
            )
        if self.mode.startswith("int8") and self.device.type == "cuda" and dtype != torch.float16:
            raise ValueError(
                f"{self.mode!r} on CUDA computes in torch.float16 only, not {dtype}; "
                "pass dtype=torch.float16, or use a 4-bit mode (nf4, fp4)"
            )
        self.dtype = dtype
        self.ignore_modules = set(ignore_modules or ())

    def _new_layer(self, linear: torch.nn.Linear) -> torch.nn.Module:
        with torch.device("meta"):
            if self.mode.startswith("int8"):
                layer: torch.nn.Module = QuantizedLinear8bit(
                    linear.in_features,
                    linear.out_features,
                    bias=linear.bias is not None,
                    has_fp16_weights=self.mode == "int8-training",
                    threshold=6.0,
                )
            else:
                layer = QuantizedLinear4bit(
                    linear.in_features,
                    linear.out_features,
                    bias=linear.bias is not None,
                    compute_dtype=self.dtype,
                    compress_statistics=self.mode.endswith("-dq"),
                    quant_type=self.mode[:3],
                )
        device = linear.weight.device
        layer._materialize_on = self.device if device.type == "meta" else device  # type: ignore[assignment]
        if device.type != "meta":
            layer.load_state_dict(linear.state_dict(), assign=True)
        return layer

    def _replace(self, module: torch.nn.Module, prefix: str) -> None:
        for name, child in module.named_children():
            full = f"{prefix}{name}"
            if any(full.startswith(ignored) for ignored in self.ignore_modules):
                continue
            if isinstance(child, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)):
                continue
            if isinstance(child, torch.nn.Linear):
                setattr(module, name, self._new_layer(child))
            else:
                self._replace(child, f"{full}.")

    def convert_module(self, module: torch.nn.Module) -> torch.nn.Module:
        """Quantize every Linear layer (recursively; ``ignore_modules`` excepted)."""
        if not any(isinstance(m, torch.nn.Linear) for m in module.modules()):
            raise TypeError(
                f"{type(module).__name__} has no torch.nn.Linear layer, so "
                "BitsandbytesPrecision has nothing to quantize; use another precision plugin "
                "(e.g. 'bf16-true') for this model"
            )
        self._replace(module, "")
        return module

    def prepare_for_load(self, module: torch.nn.Module) -> torch.nn.Module:
        """Quantized layers in place of the Linear ones, so that a quantized state dict
        (packed weights, absmax, quant_map, SCB) loads as it is; converted layers stay."""
        return self.convert_module(module)

    def tensor_init_context(self) -> contextlib.AbstractContextManager[Any]:
        return default_dtype(self.dtype)

    def module_init_context(self) -> contextlib.AbstractContextManager[Any]:
        """Build the model on the meta device (no memory); load a state dict after converting."""
        stack = contextlib.ExitStack()
        stack.enter_context(default_dtype(self.dtype))
        stack.enter_context(torch.device("meta"))
        return stack

    def forward_context(self) -> contextlib.AbstractContextManager[Any]:
        return default_dtype(self.dtype)

    def convert_input(self, data: Any) -> Any:
        return convert_floating(data, self.dtype)

    def convert_output(self, data: Any) -> Any:
        return convert_floating(data, torch.get_default_dtype())
