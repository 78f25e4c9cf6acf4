"""What the precision plugins share: dtype contexts, casting batches, checking values."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from plugin_registry.errors import ConfigurationError

#: Which built-in plugin serves each precision value, for error messages.
SERVED_BY = {
    "32-true": "32-true (Precision)",
    "64-true": "64-true (DoublePrecision)",
    "16-true": "16-true (HalfPrecision)",
    "bf16-true": "bf16-true (HalfPrecision)",
    "16-mixed": "16-mixed (MixedPrecision)",
    "bf16-mixed": "bf16-mixed (MixedPrecision)",
}
#: Short forms Lightning still accepts, and what they mean.
SHORT_FORMS = {"64": "64-true", "32": "32-true", "16": "16-mixed", "bf16": "bf16-mixed"}


class UnsupportedChoiceError(ConfigurationError, KeyError):
    """A value a plugin looks up in its table of choices (bitsandbytes' ``mode``), where
    Lightning's lookup raises KeyError: ``except KeyError`` and ``except ValueError``
    both catch it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, subject="parameter")

    def __str__(self) -> str:  # KeyError's would quote the message as a key
        return str(self.args[0])


def check_precision(
    value: object,
    allowed: tuple[str, ...],
    plugin: str,
    parameter: str = "precision",
    error: type[ValueError] = ValueError,
) -> str:
    """``value`` if ``allowed``; else ``error`` listing the valid values and who serves it."""
    if isinstance(value, str) and value in allowed:
        return value
    text = str(value)
    message = (
        f"{plugin} does not support {parameter}={value!r}; choose one of {', '.join(allowed)}."
    )
    full = SHORT_FORMS.get(text, text)
    if full != text and full in allowed:
        message += f" ({text!r} is the short form of {full!r}: write {full!r}.)"
    elif full in SERVED_BY:
        message += f" {full!r} is served by the plugin named {SERVED_BY[full]}."
    else:
        from plugin_registry.names import did_you_mean

        message = message[:-1] + (did_you_mean(text, allowed) or ".")
    raise error(message)


@contextlib.contextmanager
def default_dtype(dtype: Any) -> Iterator[None]:
    """Set torch's default dtype inside; the previous one is restored, also on error."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def convert_floating(data: Any, dtype: Any) -> Any:
    """Cast the floating-point tensors in ``data`` (any nesting) to ``dtype``; others stay."""
    import torch

    if isinstance(data, torch.Tensor):
        return data.to(dtype) if torch.is_floating_point(data) else data
    if isinstance(data, Mapping):
        return type(data)({k: convert_floating(v, dtype) for k, v in data.items()})  # type: ignore[call-arg]
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(convert_floating(v, dtype) for v in data))
    if isinstance(data, (list, tuple)):
        return type(data)(convert_floating(v, dtype) for v in data)
    return data


class WholeModelCast:
    """Mixin for the ``-true`` plugins: the whole model, its inputs and the default
    dtype inside the contexts are ``_dtype``; outputs go back to the default dtype."""

    _dtype: Any

    def convert_module(self, module: Any) -> Any:
        return module.to(dtype=self._dtype)

    def tensor_init_context(self) -> contextlib.AbstractContextManager[Any]:
        return default_dtype(self._dtype)

    def module_init_context(self) -> contextlib.AbstractContextManager[Any]:
        return self.tensor_init_context()

    def forward_context(self) -> contextlib.AbstractContextManager[Any]:
        return self.tensor_init_context()

    def convert_input(self, data: Any) -> Any:
        return convert_floating(data, self._dtype)

    def convert_output(self, data: Any) -> Any:
        import torch

        return convert_floating(data, torch.get_default_dtype())
