"""The plugin kinds: one table, and one base class per kind with Lightning's interface.

:data:`SPECS` is the one declaration of the kinds: records, names, hook specs,
the CLI, the resolution and the base classes all read it. The modules here
import torch only inside methods, so a registration module or a listing never
pays for it. :func:`base_class` maps a kind to its class.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Literal, get_args

Kind = Literal["precision", "checkpoint_io", "cluster_environment"]


@dataclasses.dataclass(frozen=True)
class KindSpec:
    """Everything that differs between the kinds."""

    name: Kind
    #: The hook (:mod:`plugin_registry.hookspecs`) that returns records of the kind.
    hook: str
    #: ``module:Class`` of the base class, imported only when asked for.
    base: str
    #: The listing's title for the kind.
    title: str
    #: The resolution's name for the slot the kind fills.
    slot: str
    #: The module of ``builtin_plugins`` that holds the built-ins of the kind.
    builtin_package: str


SPECS: tuple[KindSpec, ...] = (
    KindSpec(
        "precision",
        "plugin_registry_precision_plugins",
        "plugin_registry.kinds.precision:Precision",
        "Precision plugins",
        "precision",
        "builtin_plugins.precision",
    ),
    KindSpec(
        "checkpoint_io",
        "plugin_registry_checkpoint_io_plugins",
        "plugin_registry.kinds.checkpoint_io:CheckpointIO",
        "Checkpoint IO plugins",
        "checkpoint IO",
        "builtin_plugins.checkpoint_io",
    ),
    KindSpec(
        "cluster_environment",
        "plugin_registry_cluster_environment_plugins",
        "plugin_registry.kinds.cluster_environment:ClusterEnvironment",
        "Cluster environments",
        "cluster environment",
        "builtin_plugins.environments",
    ),
)
KINDS: tuple[Kind, ...] = tuple(s.name for s in SPECS)
assert get_args(Kind) == KINDS, "SPECS and Kind name the same kinds, in the same order"
_BY_NAME = {s.name: s for s in SPECS}


def spec(kind: str) -> KindSpec:
    """The :class:`KindSpec` of a normalised kind name (KeyError for another)."""
    return _BY_NAME[kind]  # type: ignore[index]


def base_class(kind: str) -> type[Any] | None:
    """The base class a plugin of ``kind`` must build, or None where none exists yet."""
    module_name, _, attr = spec(kind).base.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return None
    cls: type[Any] = getattr(module, attr)
    return cls


def __getattr__(name: str) -> Any:
    for kind_spec in SPECS:
        if kind_spec.base.endswith(":" + name):
            cls = base_class(kind_spec.name)
            if cls is not None:
                return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
