"""Plain records: what discovery finds, before anything is loaded.

A :class:`PluginInfo` describes one plugin without importing it, in the spirit of
stevedore's entry-point records: listing, lookup and the resolver work on these,
and only :meth:`plugin_registry.Registry.load` imports ``target``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal, get_args

from plugin_registry.errors import InvalidRecordError
from plugin_registry.names import NAME_RE, normalize_name, template_fields

#: The entry-point group through which plugin packages are found.
ENTRY_POINT_GROUP = "plugin_registry"

Kind = Literal["precision", "checkpoint_io", "cluster_environment"]
KINDS: tuple[Kind, ...] = get_args(Kind)

_TARGET_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_ACCELERATOR_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def _freeze(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


def _check_json(value: object, where: str) -> None:
    if value is None or isinstance(value, (str, bool, int, float)):
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_json(item, where)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidRecordError(f"{where}: key {key!r} is not a string")
            _check_json(item, where)
        return
    raise InvalidRecordError(
        f"{where}: {value!r} ({type(value).__name__}) is not a plain value; "
        "parameters must be str, int, float, bool, None, lists or dicts of those"
    )


@dataclasses.dataclass(frozen=True, eq=True)
class PluginInfo:
    """One plugin, as a plugin package declares it and discovery completes it.

    A plugin package returns these from its hook implementations, filling the
    fields above ``distribution``; discovery fills the rest.

    ``name`` and each alias may contain ``{field}`` placeholders, each naming a
    key of ``name_parameters`` with its finite list of choices. The record then
    serves every expansion: ``bitsandbytes-{mode}`` with
    ``{"mode": ["nf4", "fp4"]}`` serves ``bitsandbytes-nf4`` and
    ``bitsandbytes-fp4``, and loading ``bitsandbytes-fp4`` passes ``mode="fp4"``
    to the target.

    The resolver reads four more fields (see :mod:`plugin_registry.resolver`):

    ``provides``
        the ``precision=`` settings the plugin implements besides its own names
        (placeholders allowed): ``fsdp-{precision}`` provides ``"{precision}"``.
    ``strategies``
        the strategy families it is made for (``"fsdp"``, ``"deepspeed"``,
        ``"xla"``); empty means the plain ones (single device, DDP).
    ``constraints``
        conditions on every device the job uses, as version specifiers on the
        device properties hardware detection reports:
        ``{"compute_capability": ">=8.9"}``.
    ``accelerators``
        where the plugin runs; ``"any"`` for every accelerator (a launcher's
        cluster environment).
    ``shardable``
        False when the plugin holds parameters that a strategy sharding
        parameters (FSDP, DeepSpeed stage 3) cannot split, e.g. packed 4-bit
        weights.
    """

    name: str
    kind: Kind
    target: str
    summary: str = ""
    parameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    name_parameters: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    requires: tuple[str, ...] = ()
    accelerators: tuple[str, ...] = ("cpu",)
    priority: int = 0
    install_hint: str = ""
    # What the resolver matches a request against (plugin_registry.resolver).
    provides: tuple[str, ...] = ()
    strategies: tuple[str, ...] = ()
    constraints: Mapping[str, str] = dataclasses.field(default_factory=dict)
    shardable: bool = True
    # Filled by discovery; a plugin package leaves them alone.
    distribution: str | None = None
    version: str | None = None
    available: bool = True
    unavailable_reason: str = ""

    def __post_init__(self) -> None:
        # Frozen containers: a record is shared by every caller and by the cache.
        object.__setattr__(self, "parameters", _freeze(self.parameters))
        object.__setattr__(self, "constraints", _freeze(self.constraints))
        object.__setattr__(
            self,
            "name_parameters",
            _freeze({k: tuple(v) for k, v in self.name_parameters.items()}),
        )
        for field_name in ("aliases", "requires", "accelerators", "provides", "strategies"):
            value = getattr(self, field_name)
            if isinstance(value, str):
                object.__setattr__(self, field_name, (value,))
            else:
                object.__setattr__(self, field_name, tuple(value))

    def __hash__(self) -> int:
        return hash((self.kind, self.name, self.distribution, self.target))

    @property
    def qualified_name(self) -> str:
        """``distribution:name``, the spelling that picks this provider."""
        return f"{self.distribution or '<in-process>'}:{self.name}"

    @property
    def provider(self) -> str:
        """The distribution and version, as a person reads it."""
        if self.distribution is None:
            return "<in-process>"
        return f"{self.distribution} {self.version}" if self.version else self.distribution

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` inverts it."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Mapping):
                value = {k: list(v) if isinstance(v, tuple) else v for k, v in value.items()}
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PluginInfo:
        return cls(**data)


def validate_record(obj: object, kind: Kind, *, check_target: bool = True) -> PluginInfo:
    """Check a record returned by a hook for ``kind``; raise InvalidRecordError."""
    if not isinstance(obj, PluginInfo):
        raise InvalidRecordError(
            f"expected a plugin_registry.PluginInfo, got {type(obj).__name__} ({obj!r:.80})"
        )
    where = f"record {obj.name!r}" if isinstance(obj.name, str) else "record"
    if not isinstance(obj.name, str) or not obj.name:
        raise InvalidRecordError(f"{where}: name must be a non-empty string")
    if obj.kind != kind:
        raise InvalidRecordError(
            f"{where}: kind {obj.kind!r} returned from the {kind!r} hook; "
            f"return it from plugin_registry_{obj.kind}_plugins instead"
            if obj.kind in KINDS
            else f"{where}: unknown kind {obj.kind!r}; choose one of {', '.join(KINDS)}"
        )
    if check_target and (not isinstance(obj.target, str) or not _TARGET_RE.match(obj.target)):
        raise InvalidRecordError(
            f"{where}: target {obj.target!r} is not of the form 'package.module:attribute'"
        )
    if not isinstance(obj.summary, str):
        raise InvalidRecordError(f"{where}: summary must be a string")
    if not isinstance(obj.priority, int) or isinstance(obj.priority, bool):
        raise InvalidRecordError(f"{where}: priority {obj.priority!r} is not an integer")
    for label, values in (("requires", obj.requires), ("accelerators", obj.accelerators)):
        for value in values:
            if not isinstance(value, str) or not value.strip():
                raise InvalidRecordError(f"{where}: {label} entry {value!r} is not a string")
    for label, words in (("accelerator", obj.accelerators), ("strategy", obj.strategies)):
        for word in words:
            if not isinstance(word, str) or not _ACCELERATOR_RE.match(word):
                raise InvalidRecordError(f"{where}: {label} {word!r} is not a lowercase word")
    _check_constraints(obj.constraints, where)
    if not isinstance(obj.shardable, bool):
        raise InvalidRecordError(f"{where}: shardable must be True or False")
    _check_json(dict(obj.parameters), f"{where}: parameters")
    for field_name, choices in obj.name_parameters.items():
        if not choices or not all(isinstance(c, str) and c for c in choices):
            raise InvalidRecordError(
                f"{where}: name_parameters[{field_name!r}] must be a non-empty list of strings"
            )
    for spelled in obj.provides:
        if not isinstance(spelled, str) or not spelled:
            raise InvalidRecordError(f"{where}: provides entry {spelled!r} is not a string")
        missing = template_fields(spelled) - set(obj.name_parameters)
        if missing:
            raise InvalidRecordError(
                f"{where}: placeholder(s) {sorted(missing)} in provides {spelled!r} have no "
                "choices in name_parameters"
            )
    for spelled in (obj.name, *obj.aliases):
        if not isinstance(spelled, str):
            raise InvalidRecordError(f"{where}: alias {spelled!r} is not a string")
        fields = template_fields(spelled)
        missing = fields - set(obj.name_parameters)
        if missing:
            raise InvalidRecordError(
                f"{where}: placeholder(s) {sorted(missing)} in {spelled!r} have no "
                "choices in name_parameters"
            )
        literal = re.sub(r"\{\w+\}", "x", spelled)
        if not NAME_RE.match(normalize_name(literal)):
            raise InvalidRecordError(
                f"{where}: {spelled!r} is not a valid plugin name (letters, digits, '-', '_', "
                "'.'; starting with a letter or digit)"
            )
    for field_name, choices in obj.name_parameters.items():
        for choice in choices:
            if not NAME_RE.match(normalize_name(choice)):
                raise InvalidRecordError(
                    f"{where}: choice {choice!r} of {field_name!r} is not valid in a name"
                )
    return obj


def _check_constraints(constraints: Mapping[str, Any], where: str) -> None:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    for key, value in constraints.items():
        if not isinstance(key, str) or not _ACCELERATOR_RE.match(key):
            raise InvalidRecordError(f"{where}: constraint key {key!r} is not a lowercase word")
        try:
            SpecifierSet(value)
        except (InvalidSpecifier, TypeError) as exc:
            raise InvalidRecordError(
                f"{where}: constraint {key}={value!r} is not a version specifier such as '>=8.9'"
            ) from exc


@dataclasses.dataclass(frozen=True)
class Problem:
    """Something discovery could not use, kept so listing can show it.

    ``exception`` is the original error in the process that met it; a problem
    read back from the cache has only ``detail`` (the formatted traceback).
    """

    distribution: str | None
    entry_point: str
    reason: str
    severity: Literal["error", "warning"] = "error"
    names: tuple[str, ...] = ()
    kind: Kind | None = None
    detail: str = ""
    exception: BaseException | None = dataclasses.field(default=None, compare=False)

    @property
    def key(self) -> tuple[str | None, str, str]:
        return (self.distribution, self.entry_point, self.reason)

    def to_dict(self) -> dict[str, Any]:
        return {
            "distribution": self.distribution,
            "entry_point": self.entry_point,
            "reason": self.reason,
            "severity": self.severity,
            "names": list(self.names),
            "kind": self.kind,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Problem:
        return cls(
            distribution=data["distribution"],
            entry_point=data["entry_point"],
            reason=data["reason"],
            severity=data["severity"],
            names=tuple(data["names"]),
            kind=data["kind"],
            detail=data["detail"],
        )


@dataclasses.dataclass(frozen=True)
class EntryPointRef:
    """An entry point of the group, as plain data (cacheable, comparable)."""

    distribution: str
    version: str
    name: str
    value: str
    metadata_dir: str | None

    @property
    def key(self) -> str:
        return f"{self.distribution}:{self.name}"

    def to_list(self) -> list[Any]:
        return [self.distribution, self.version, self.name, self.value, self.metadata_dir]

    @classmethod
    def from_list(cls, data: list[Any]) -> EntryPointRef:
        return cls(*data)


@dataclasses.dataclass
class Collected:
    """What one entry point yielded, and the files that result depends on."""

    records: list[PluginInfo]
    problems: list[Problem]
    deps: dict[str, int | None]
    collected_at: float
    #: Hooks beyond the record hooks that the registration module implements.
    hooks: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": [r.to_dict() for r in self.records],
            "problems": [p.to_dict() for p in self.problems],
            "deps": self.deps,
            "collected_at": self.collected_at,
            "hooks": list(self.hooks),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Collected:
        return cls(
            records=[PluginInfo.from_dict(r) for r in data["records"]],
            problems=[Problem.from_dict(p) for p in data["problems"]],
            deps=dict(data["deps"]),
            collected_at=data["collected_at"],
            hooks=list(data["hooks"]),
        )
