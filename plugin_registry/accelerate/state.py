"""The whole training state of an Accelerator as one checkpoint of tensors.

Accelerate's ``save_state`` writes one file per object (weights, each optimizer,
each scheduler, the scaler, one RNG file per process) with a plain ``torch.save``:
a process killed half-way leaves a folder where new weights sit beside an old
optimizer. Here the state is one checkpoint handed to the checkpoint IO, so the
IO's guarantee covers all of it: the ``torch`` IO's atomic, durable write, the
``async`` IO's background write, or the ``safetensors`` IO's format.

Any IO can hold it because it is only tensors: every tensor of the state under
its own key, and the rest (optimizer hyper-parameters, step counters, the Python
and NumPy RNG states) as JSON in one ``uint8`` tensor, the *skeleton*, whose
``{"__tensor__": key}`` entries say where each tensor goes back. No pickle is
written, so a load is ``weights_only`` safe with every IO.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import torch

from plugin_registry.errors import CheckpointError

__all__ = ["FIELDS", "STATE_FILE", "decode", "encode"]

#: The file that holds the state inside ``save_state``'s folder.
STATE_FILE = "plugin_registry_state.ckpt"
#: The version of the layout below; a load refuses another.
FORMAT = 1
#: The state's fields, and which of them map an object's index to its state.
FIELDS = (
    "step",
    "models",
    "optimizers",
    "schedulers",
    "dataloaders",
    "custom",
    "precision",
    "scaler",
    "rng",
)
_INDEXED = ("models", "optimizers", "schedulers", "dataloaders", "custom", "rng")
_SKELETON = "skeleton"
_TENSOR = "__tensor__"
_TUPLE = "__tuple__"
_FLOAT = "__float__"


def encode(state: Mapping[str, Any], where: str) -> dict[str, torch.Tensor]:
    """``{key: tensor}``: the tensors of ``state`` and its skeleton.

    A tensor met twice (tied weights) is stored once. A value that is neither a
    tensor nor plain data (a string, a number, a bool, None, a list, a tuple, a
    dict with string keys) is refused with its path in ``state``.
    """
    tensors: dict[str, torch.Tensor] = {}
    seen: dict[int, str] = {}

    def walk(value: Any, path: str) -> Any:
        if isinstance(value, torch.Tensor):
            key = seen.get(id(value))
            if key is None:
                key = f"t{len(tensors)}"
                seen[id(value)] = key
                tensors[key] = value.detach().contiguous()
            return {_TENSOR: key}
        if value is None or isinstance(value, (str, bool, int)):
            return value
        if isinstance(value, float):
            # JSON has no inf or nan; the skeleton spells them.
            return value if math.isfinite(value) else {_FLOAT: repr(value)}
        if isinstance(value, Mapping):
            out = {}
            for key, item in value.items():
                if isinstance(key, bool) or not isinstance(key, (str, int)):
                    raise _unsupported(where, path, f"a key of type {type(key).__name__}")
                # JSON objects have string keys: an int key keeps its type in the name.
                name = key if isinstance(key, str) else f"__int__{key}"
                out[name] = walk(item, f"{path}.{key}")
            return out
        if isinstance(value, (list, tuple)):
            items = [walk(item, f"{path}[{i}]") for i, item in enumerate(value)]
            return {_TUPLE: items} if isinstance(value, tuple) else items
        if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
            return walk(value.tolist(), path)
        raise _unsupported(where, path, f"a {type(value).__module__}.{type(value).__name__}")

    skeleton = walk(dict(state), "state")
    text = json.dumps({"format": FORMAT, "state": skeleton}, allow_nan=False)
    tensors[_SKELETON] = torch.frombuffer(bytearray(text.encode()), dtype=torch.uint8)
    return tensors


def decode(checkpoint: Mapping[str, Any], where: str, check: bool = True) -> dict[str, Any]:
    """The state :func:`encode` made ``checkpoint`` of; ``check``: that it has the
    fields of an Accelerator's state (:data:`FIELDS`)."""
    skeleton = checkpoint.get(_SKELETON) if isinstance(checkpoint, Mapping) else None
    if not isinstance(skeleton, torch.Tensor) or skeleton.dtype != torch.uint8:
        raise CheckpointError(
            f"{where} is not a state written by plugin_registry.accelerate (no {_SKELETON!r})",
            where,
            reason="unreadable",
        )
    try:
        data = json.loads(bytes(skeleton.cpu().reshape(-1).numpy()).decode())
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(
            f"{where}: its skeleton is damaged ({type(exc).__name__})", where, reason="unreadable"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(
            f"{where} has state format {data.get('format') if isinstance(data, dict) else None!r}"
            f", which this version does not read (it reads {FORMAT})",
            where,
            reason="unreadable",
        )

    def walk(value: Any) -> Any:
        if isinstance(value, list):
            return [walk(item) for item in value]
        if not isinstance(value, dict):
            return value
        if _TENSOR in value:
            found = checkpoint.get(value[_TENSOR]) if isinstance(value[_TENSOR], str) else None
            if not isinstance(found, torch.Tensor):
                raise CheckpointError(
                    f"{where} lacks tensor {value[_TENSOR]!r} that its skeleton names",
                    where,
                    reason="unreadable",
                )
            return found
        if _TUPLE in value:
            return tuple(walk(item) for item in value[_TUPLE])
        if _FLOAT in value:
            return float(value[_FLOAT])
        return {
            (int(k[len("__int__") :]) if k.startswith("__int__") else k): walk(v)
            for k, v in value.items()
        }

    try:
        state = walk(data.get("state"))
    except (ValueError, TypeError, RecursionError) as exc:
        raise CheckpointError(
            f"{where}: its skeleton is damaged ({type(exc).__name__}: {exc})"[:300],
            where,
            reason="unreadable",
        ) from None
    if check:
        _check_fields(state, where)
    return state  # type: ignore[no-any-return]


def _check_fields(state: Any, where: str) -> None:
    """Each field of :data:`FIELDS` there, the indexed ones mapping indices to states."""
    if not isinstance(state, dict) or set(state) != set(FIELDS):
        got = sorted(map(str, state)) if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{where}: the state has fields {got}, not {sorted(FIELDS)}", where, reason="unreadable"
        )
    if isinstance(state["step"], bool) or not isinstance(state["step"], int):
        raise CheckpointError(
            f"{where}: field 'step' is not an integer", where, reason="unreadable"
        )
    for field in _INDEXED:
        value = state[field]
        if not isinstance(value, dict) or not all(
            isinstance(k, int) and not isinstance(k, bool) for k in value
        ):
            raise CheckpointError(
                f"{where}: field {field!r} does not map indices to states",
                where,
                reason="unreadable",
            )


def _unsupported(where: str, path: str, what: str) -> CheckpointError:
    return CheckpointError(
        f"cannot save the state to {where}: {path} is {what}, and the state holds only "
        "tensors and plain data (numbers, strings, lists, dicts); return that from its "
        "state_dict(), or leave the checkpoint IO out of plugins=[...] to save with "
        "Accelerate's own pickle files",
        where,
    )
