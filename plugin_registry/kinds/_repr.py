"""``BitsandbytesPrecision(mode='nf4')``: the repr every plugin base class gives.

Built from the constructor's signature and the attributes of the same name
(or with a leading underscore): the first parameter always, the others when
they differ from their default. A parameter the object does not keep is left
out, never guessed.
"""

from __future__ import annotations

import inspect
from typing import Any

_MISSING = object()


def plugin_repr(obj: Any) -> str:
    cls = type(obj)
    try:
        parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    except (TypeError, ValueError):
        parameters = []
    shown: list[str] = []
    for index, param in enumerate(parameters):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        value = getattr(obj, param.name, _MISSING)
        if value is _MISSING:
            value = getattr(obj, f"_{param.name}", _MISSING)
        if value is _MISSING:
            continue
        default = param.default
        try:
            same = default is not param.empty and bool(value == default)
        except Exception:  # noqa: BLE001 - a tensor, or an object without a plain ==
            same = False
        if index == 0 or not same:
            text = repr(value)
            shown.append(f"{param.name}={text if len(text) <= 60 else text[:57] + '...'}")
    return f"{cls.__name__}({', '.join(shown)})"
