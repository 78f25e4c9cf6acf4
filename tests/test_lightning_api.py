"""Our classes against Lightning's: every public name and signature a Lightning user
calls exists here and takes the same arguments. What differs is listed in
``DIFFERENCES`` and explained in docs/lightning.md (a test keeps the two in step)."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("lightning", reason="lightning is not installed (the [lightning] extra)")

REPO = Path(__file__).resolve().parents[1]

_F = "lightning.fabric.plugins"
PAIRS = {
    "plugin_registry.kinds.precision:Precision": f"{_F}.precision:Precision",
    "builtin_plugins.precision.double:DoublePrecision": f"{_F}.precision:DoublePrecision",
    "builtin_plugins.precision.half:HalfPrecision": f"{_F}.precision:HalfPrecision",
    "builtin_plugins.precision.mixed:MixedPrecision": f"{_F}.precision:MixedPrecision",
    "builtin_plugins.precision.fsdp:FSDPPrecision": f"{_F}.precision:FSDPPrecision",
    "builtin_plugins.precision.deepspeed:DeepSpeedPrecision": f"{_F}.precision:DeepSpeedPrecision",
    "builtin_plugins.precision.xla:XLAPrecision": f"{_F}.precision:XLAPrecision",
    "builtin_plugins.precision.transformer_engine:TransformerEnginePrecision": (
        f"{_F}.precision:TransformerEnginePrecision"
    ),
    "builtin_plugins.precision.bitsandbytes:BitsandbytesPrecision": (
        f"{_F}.precision:BitsandbytesPrecision"
    ),
    "plugin_registry.kinds.checkpoint_io:CheckpointIO": f"{_F}.io:CheckpointIO",
    "builtin_plugins.checkpoint_io.torch_io:TorchCheckpointIO": f"{_F}.io:TorchCheckpointIO",
    "builtin_plugins.checkpoint_io.xla_io:XLACheckpointIO": f"{_F}.io:XLACheckpointIO",
    "builtin_plugins.checkpoint_io.async_io:AsyncCheckpointIO": (
        "lightning.pytorch.plugins.io:AsyncCheckpointIO"
    ),
    "plugin_registry.kinds.cluster_environment:ClusterEnvironment": (
        f"{_F}.environments:ClusterEnvironment"
    ),
    "builtin_plugins.environments.lightning:LightningEnvironment": (
        f"{_F}.environments:LightningEnvironment"
    ),
    "builtin_plugins.environments.slurm:SLURMEnvironment": f"{_F}.environments:SLURMEnvironment",
    "builtin_plugins.environments.lsf:LSFEnvironment": f"{_F}.environments:LSFEnvironment",
    "builtin_plugins.environments.kubeflow:KubeflowEnvironment": (
        f"{_F}.environments:KubeflowEnvironment"
    ),
    "builtin_plugins.environments.torchelastic:TorchElasticEnvironment": (
        f"{_F}.environments:TorchElasticEnvironment"
    ),
    "builtin_plugins.environments.xla:XLAEnvironment": f"{_F}.environments:XLAEnvironment",
    "builtin_plugins.environments.mpi:MPIEnvironment": f"{_F}.environments:MPIEnvironment",
}

#: (our class, name): why it differs. Each is also a row of docs/lightning.md's table.
DIFFERENCES: dict[tuple[str, str], str] = {}


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _kind(attr: Any) -> str:
    if isinstance(attr, property):
        return "property"
    if isinstance(attr, staticmethod):
        return "staticmethod"
    if isinstance(attr, classmethod):
        return "classmethod"
    return "method" if callable(attr) else "attribute"


def _annotated(cls: type, name: str) -> bool:
    return any(name in vars(k).get("__annotations__", {}) for k in cls.__mro__)


def _named(sig: inspect.Signature) -> list[inspect.Parameter]:
    return [
        p
        for p in sig.parameters.values()
        if p.name not in ("self", "cls") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def _call_differences(name: str, theirs: Any, ours: Any) -> list[str]:
    """What a call that Lightning's accepts would do differently with ours."""
    try:
        their_sig, our_sig = inspect.signature(theirs), inspect.signature(ours)
    except (TypeError, ValueError):
        return []
    problems = []
    their_params, our_params = _named(their_sig), _named(our_sig)
    our_by_name = {p.name: p for p in our_params}
    for i, param in enumerate(their_params):
        mine = our_by_name.get(param.name)
        if mine is None:
            problems.append(f"{name}: no parameter {param.name!r}")
            continue
        positional = param.kind is param.POSITIONAL_OR_KEYWORD
        if positional and (i >= len(our_params) or our_params[i].name != param.name):
            problems.append(f"{name}: {param.name!r} is not argument {i + 1}")
        if param.default is not param.empty and mine.default is param.empty:
            problems.append(f"{name}: {param.name!r} has no default")
        elif (
            param.default is not param.empty
            and not callable(param.default)
            and mine.default != param.default
        ):
            problems.append(f"{name}: {param.name}={mine.default!r}, not {param.default!r}")
    forwards = any(
        p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in their_sig.parameters.values()
    )
    for mine in our_params:
        if forwards and not their_params:
            break  # Lightning's passes everything on to the IO it wraps; so does ours
        if mine.name not in {p.name for p in their_params} and mine.default is mine.empty:
            problems.append(f"{name}: {mine.name!r} is required here")
    return problems


def _differences(ours: type, theirs: type) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in sorted(dir(theirs)):
        if name.startswith("_") and name != "__init__":
            continue
        their_attr = inspect.getattr_static(theirs, name)
        if not hasattr(ours, name):
            if not _annotated(ours, name):
                found[name] = "missing"
            continue
        our_attr = inspect.getattr_static(ours, name)
        if _kind(their_attr) != _kind(our_attr) and name != "__init__":
            found[name] = f"a {_kind(our_attr)} here, a {_kind(their_attr)} in Lightning"
            continue
        if _kind(their_attr) in ("method", "staticmethod", "classmethod"):
            problems = _call_differences(name, getattr(theirs, name), getattr(ours, name))
            if problems:
                found[name] = "; ".join(problems)
    return found


#: Classes whose module imports an optional library.
NEEDS = {"builtin_plugins.precision.bitsandbytes:BitsandbytesPrecision": "bitsandbytes"}


@pytest.mark.parametrize(
    "ours_path",
    [
        pytest.param(path, marks=pytest.mark.needs(NEEDS[path])) if path in NEEDS else path
        for path in sorted(PAIRS)
    ],
)
def test_public_names_and_signatures_match_lightnings(ours_path: str) -> None:
    ours, theirs = _load(ours_path), _load(PAIRS[ours_path])
    found = _differences(ours, theirs)
    expected = {name for (cls, name) in DIFFERENCES if cls == ours.__name__}
    assert set(found) == expected, found


def test_every_difference_is_explained_in_the_docs() -> None:
    doc = (REPO / "docs" / "lightning.md").read_text()
    for cls, name in DIFFERENCES:
        assert f"`{cls}.{name}`" in doc, f"{cls}.{name} is not in docs/lightning.md"
