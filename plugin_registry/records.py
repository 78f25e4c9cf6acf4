"""Plain records: what discovery finds, before anything is loaded.

A :class:`PluginInfo` describes one plugin without importing it, in the spirit of
stevedore's entry-point records: listing, lookup and the resolver work on these,
and only :meth:`plugin_registry.Registry.load` imports ``target``.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Literal

from plugin_registry.errors import ConfigurationError
from plugin_registry.kinds import KINDS, Kind
from plugin_registry.names import (
    NAME_RE,
    Expansion,
    expand,
    fill_placeholders,
    normalize_distribution,
    normalize_name,
    template_fields,
)

#: The entry-point group through which plugin packages are found.
ENTRY_POINT_GROUP = "plugin_registry"
#: The qualifier of plugins registered in-process (``Registry.register``).
IN_PROCESS = "<in-process>"

# The kinds are declared once, in plugin_registry.kinds; re-exported here.
__all__ = [
    "ENTRY_POINT_GROUP",
    "KINDS",
    "Collected",
    "EntryPointRef",
    "Kind",
    "PluginInfo",
    "Problem",
    "validate_record",
]

_TARGET_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$", re.ASCII)
_ACCELERATOR_RE = re.compile(r"[a-z][a-z0-9_]*\Z")
#: Control characters (C0, DEL, C1) and line/paragraph separators: never in a
#: name; in free text only as an escaped form (see plugin_registry._text).
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

#: Limits on what one record may declare; a record over them is a Problem.
MAX_NAME_LENGTH = 100
MAX_TEXT_LENGTH = 2000
MAX_NAMES_PER_RECORD = 1024
MAX_PARAMETER_DEPTH = 32
MAX_PARAMETER_ITEMS = 10_000
#: Limits on what one package may declare in all, its records together. Every
#: lookup reads every cached record and indexes every name, so these bound what
#: the largest package within them costs everyone else's lookups (at most a few
#: times a lookup without it; benchmarks/bench_package_limits.py measures it).
#: The records past a limit are ignored, and the package has a Problem.
MAX_RECORDS_PER_PACKAGE = 1000
MAX_NAMES_PER_PACKAGE = 4096
MAX_PARAMETER_ITEMS_PER_PACKAGE = 20_000
MAX_RECORD_BYTES_PER_PACKAGE = 1024 * 1024
_MAX_INT = 2**63


def _freeze(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


def _check_json(value: object, where: str) -> int:
    """A plain JSON value of bounded depth and size, checked without recursion; the
    number of values in it."""
    stack: list[tuple[object, int]] = [(value, 0)]
    seen = 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if seen > MAX_PARAMETER_ITEMS:
            raise ConfigurationError(
                f"{where}: more than {MAX_PARAMETER_ITEMS} values", subject="record"
            )
        if depth > MAX_PARAMETER_DEPTH:
            raise ConfigurationError(
                f"{where}: nested deeper than {MAX_PARAMETER_DEPTH} levels", subject="record"
            )
        kind = type(item)
        if item is None or kind in (str, bool):
            continue
        if kind is int:
            if not -_MAX_INT <= item < _MAX_INT:  # type: ignore[operator]
                raise ConfigurationError(
                    f"{where}: integer out of the 64-bit range JSON carries", subject="record"
                )
            continue
        if kind is float:
            if item != item or item in (float("inf"), float("-inf")):
                raise ConfigurationError(
                    f"{where}: {item!r} is not a finite number", subject="record"
                )
            continue
        if kind in (list, tuple):
            stack.extend((v, depth + 1) for v in item)  # type: ignore[attr-defined]
            continue
        if isinstance(item, Mapping) and kind in (dict, MappingProxyType):
            for key, v in item.items():
                if type(key) is not str:
                    raise ConfigurationError(
                        f"{where}: key {_short(key)} is not a string", subject="record"
                    )
                stack.append((v, depth + 1))
            continue
        raise ConfigurationError(
            f"{where}: a {kind.__name__} is not a plain value; parameters must be str, int, "
            "float, bool, None, lists or dicts of those",
            subject="record",
        )
    return seen


def parameter_values(record: PluginInfo) -> int:
    """How many values a validated record's ``parameters`` hold, containers included."""
    return _check_json(record.parameters, "parameters")


def _short(value: object) -> str:
    """A bounded repr that a hostile ``__repr__`` cannot break."""
    try:
        text = repr(value) if type(value) in (str, int, float, bool, type(None)) else ""
    except BaseException:  # noqa: BLE001 - e.g. an int too large to print
        text = ""
    return text[:80] if text else f"<a {type(value).__name__}>"


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

    The resolver reads six more fields (see :mod:`plugin_registry.resolver`):

    ``provides``
        the ``precision=`` settings the plugin implements besides its own names
        (placeholders allowed): ``fsdp-{precision}`` provides ``"{precision}"``;
        for a checkpoint IO, ``"sharded-checkpoint"`` (every rank writes its own
        shards; chosen when the strategy shards parameters).
    ``strategies``
        the strategy families it is made for (``"fsdp"``, ``"deepspeed"``,
        ``"xla"``, ``"model_parallel"``; ``("single",)`` for one device only);
        empty means the plain ones (single device, DDP).
    ``constraints``
        conditions on every device the job uses, as version specifiers on the
        device properties hardware detection reports:
        ``{"compute_capability": ">=8.9"}``.
    ``accelerators``
        where the plugin runs; ``"any"`` for every accelerator (a launcher's
        cluster environment). The default is ``("cpu",)``: a plugin that also
        runs on CUDA must say so, a checkpoint IO too (``("cpu", "cuda")``, or
        ``("any",)`` for one that only moves bytes), or the resolver refuses it
        on a GPU machine.
    ``shardable``
        False when the plugin holds parameters that a strategy sharding
        parameters (FSDP, DeepSpeed stage 3) cannot split, e.g. packed 4-bit
        weights.
    ``priority``
        rank among the accepted candidates of a slot (users override it); for
        cluster environments, the order in which ``detect()`` is asked.
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
        for field_name in _TUPLE_FIELDS:
            value = getattr(self, field_name)
            if isinstance(value, str):
                object.__setattr__(self, field_name, (value,))
            else:
                object.__setattr__(self, field_name, tuple(value))

    def __hash__(self) -> int:
        return hash((self.kind, self.name, self.distribution, self.target))

    def expansions(self, *, aliases: bool = True) -> list[Expansion]:
        """Every concrete name (and the parameters it implies), in declaration order;
        ``aliases=False`` for the expansions of ``name`` alone."""
        spelled = self.aliases if aliases else ()
        return list(expand(self.name, spelled, self.name_parameters))

    def names(self) -> list[str]:
        """Every concrete, normalised name the record answers to, in declaration order."""
        # Computed once per record (it is frozen): listing, validation, the conflict check
        # and visibility each ask, and a warm listing's budget is a few milliseconds.
        names: tuple[str, ...] | None = self.__dict__.get("_names")
        if names is None:
            names = tuple(e.name for e in self.expansions())
            object.__setattr__(self, "_names", names)
        return list(names)

    def concrete_name(self, parameters: Mapping[str, Any]) -> str | None:
        """The concrete name of ``name`` (not of an alias) whose parameters are all in
        ``parameters`` (``bitsandbytes-nf4`` for ``mode="nf4"``); None when none is."""
        for exp in self.expansions(aliases=False):
            if all(parameters.get(k) == v for k, v in exp.parameters.items()):
                return exp.name
        return None

    @property
    def qualified_name(self) -> str:
        """``distribution:name``, the spelling that picks this provider."""
        return f"{self.distribution or '<in-process>'}:{self.name}"

    @property
    def qualifier(self) -> str:
        """What a request writes before ``:`` to pick this record's package: the
        normalised distribution name (``plugin-registry:torch``), or ``<in-process>``."""
        return normalize_distribution(self.distribution) if self.distribution else IN_PROCESS

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

    @classmethod
    def from_cache(cls, data: Mapping[str, Any], names: Iterable[str]) -> PluginInfo:
        """:meth:`from_dict` of what :meth:`to_dict` wrote for a record already validated,
        and its :meth:`names`: the same record, built without the 20 assignments of a
        frozen dataclass's ``__init__`` (a warm listing rebuilds every cached record)."""
        if data.keys() != _FIELD_NAMES:
            raise ValueError(f"not a record's fields: {sorted(data)}")
        values = dict(data)
        for key in _TUPLE_FIELDS:
            values[key] = tuple(values[key])
        values["parameters"] = _freeze(values["parameters"])
        values["constraints"] = _freeze(values["constraints"])
        values["name_parameters"] = _freeze(
            {k: tuple(v) for k, v in values["name_parameters"].items()}
        )
        values["_names"] = tuple(names)
        record = object.__new__(cls)
        record.__dict__.update(values)
        return record


_TUPLE_FIELDS = ("aliases", "requires", "accelerators", "provides", "strategies")
_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(PluginInfo))


def _check_text(value: object, where: str, label: str, limit: int = MAX_TEXT_LENGTH) -> None:
    if type(value) is not str:
        raise ConfigurationError(
            f"{where}: {label} must be a str, got {type(value).__name__}", subject="record"
        )
    if len(value) > limit:
        raise ConfigurationError(
            f"{where}: {label} is {len(value)} characters; at most {limit}", subject="record"
        )


def _check_words(values: object, where: str, label: str) -> tuple[str, ...]:
    if type(values) is not tuple:
        raise ConfigurationError(f"{where}: {label} must be a list of strings", subject="record")
    for value in values:
        _check_text(value, where, f"{label} entry", MAX_NAME_LENGTH)
    return values


def _check_name(spelled: object, where: str, label: str) -> str:
    """A name or alias as spelled: a str, short, with no control or separator character."""
    _check_text(spelled, where, label, MAX_NAME_LENGTH)
    assert isinstance(spelled, str)
    if _CONTROL_RE.search(spelled) or spelled != spelled.strip():
        raise ConfigurationError(
            f"{where}: {label} {spelled!r} contains a control, separator or surrounding space "
            "character; names are letters, digits, '-', '_' and '.'",
            subject="record",
        )
    return spelled


def _count_names(obj: PluginInfo) -> int:
    total = 0
    for spelled in (obj.name, *obj.aliases):
        count = 1
        for field in template_fields(spelled):
            count *= len(obj.name_parameters.get(field, ()))
            if count > MAX_NAMES_PER_RECORD:
                return count
        total += count
    return total


class _Check:
    """What one row of the validation table sees: the record and how strict to be.

    (A plain class: one is made per record on every warm start, and a frozen
    dataclass's ``__init__`` costs several times as much.)
    """

    __slots__ = ("check_target", "parse_constraints", "record", "where")

    def __init__(
        self, record: PluginInfo, where: str, check_target: bool, parse_constraints: bool
    ) -> None:
        self.record = record
        self.where = where
        self.check_target = check_target
        self.parse_constraints = parse_constraints


def _check_identity(c: _Check, kind: Kind) -> None:
    obj, where = c.record, c.where
    _check_name(obj.name, where, "name")
    if type(obj.kind) is not str or obj.kind not in KINDS:
        shown = obj.kind if type(obj.kind) is str else f"<a {type(obj.kind).__name__}>"
        raise ConfigurationError(
            f"{where}: unknown kind {shown!r}; choose one of {', '.join(KINDS)}", subject="record"
        )
    if obj.kind != kind:
        raise ConfigurationError(
            f"{where}: kind {obj.kind!r} returned from the {kind!r} hook; "
            f"return it from plugin_registry_{obj.kind}_plugins instead",
            subject="record",
        )


def _check_target(c: _Check) -> None:
    _check_text(c.record.target, c.where, "target", 500)
    if c.check_target and not _TARGET_RE.match(c.record.target):
        raise ConfigurationError(
            f"{c.where}: target {c.record.target!r} is not of the form 'package.module:attribute'",
            subject="record",
        )


def _check_texts(c: _Check) -> None:
    _check_text(c.record.summary, c.where, "summary")
    _check_text(c.record.install_hint, c.where, "install_hint")


def _check_priority(c: _Check) -> None:
    priority = c.record.priority
    if type(priority) is not int or not -_MAX_INT <= priority < _MAX_INT:
        raise ConfigurationError(
            f"{c.where}: priority {_short(priority)} is not an integer", subject="record"
        )


def _check_word_fields(c: _Check) -> None:
    obj, where = c.record, c.where
    for label in ("aliases", "requires", "accelerators", "provides", "strategies"):
        _check_words(getattr(obj, label), where, label)
    for value in obj.requires:
        if not value.strip():
            raise ConfigurationError(
                f"{where}: requires entry {value!r} is not a string naming a distribution",
                subject="record",
            )
    for label, words in (("accelerator", obj.accelerators), ("strategy", obj.strategies)):
        for word in words:
            if not _ACCELERATOR_RE.match(word):
                raise ConfigurationError(
                    f"{where}: {label} {word!r} is not a lowercase word", subject="record"
                )


def _check_resolver_fields(c: _Check) -> None:
    _check_constraints(c.record.constraints, c.where, c.parse_constraints)
    if type(c.record.shardable) is not bool:
        raise ConfigurationError(f"{c.where}: shardable must be True or False", subject="record")


def _check_parameters(c: _Check) -> None:
    _check_json(c.record.parameters, f"{c.where}: parameters")


def _check_name_parameters(c: _Check) -> None:
    where = c.where
    for field_name, choices in c.record.name_parameters.items():
        _check_text(field_name, where, "name_parameters key", MAX_NAME_LENGTH)
        if not choices or not all(type(ch) is str and ch for ch in choices):
            raise ConfigurationError(
                f"{where}: name_parameters[{field_name!r}] must be a non-empty list of strings",
                subject="record",
            )
        for choice in choices:
            _check_name(choice, where, f"choice of {field_name!r}")
            if not NAME_RE.match(normalize_name(choice)):
                raise ConfigurationError(
                    f"{where}: choice {choice!r} of {field_name!r} is not valid in a name",
                    subject="record",
                )


def _check_placeholders(c: _Check) -> None:
    obj, where = c.record, c.where
    for spelled in obj.provides:
        missing = template_fields(spelled) - set(obj.name_parameters)
        if missing:
            raise ConfigurationError(
                f"{where}: placeholder(s) {sorted(missing)} in provides {spelled!r} have no "
                "choices in name_parameters",
                subject="record",
            )
    for spelled in (obj.name, *obj.aliases):
        if spelled is not obj.name:  # the name itself was checked with the identity
            _check_name(spelled, where, "alias")
        missing = template_fields(spelled) - set(obj.name_parameters)
        if missing:
            raise ConfigurationError(
                f"{where}: placeholder(s) {sorted(missing)} in {spelled!r} have no "
                "choices in name_parameters",
                subject="record",
            )
        if not NAME_RE.match(normalize_name(fill_placeholders(spelled, "x"))):
            raise ConfigurationError(
                f"{where}: {spelled!r} is not a valid plugin name (letters, digits, '-', '_', "
                "'.'; starting with a letter or digit)",
                subject="record",
            )


def _check_name_count(c: _Check) -> None:
    count = _count_names(c.record)
    if count > MAX_NAMES_PER_RECORD:
        raise ConfigurationError(
            f"{c.where}: its name, aliases and name_parameters expand to more than "
            f"{MAX_NAMES_PER_RECORD} names (at least {count}); declare fewer choices",
            subject="record",
        )


#: The validation table, in the order a record is checked (the first failure is
#: reported). Identity (name, kind) comes first and is checked on its own.
_CHECKS: tuple[Callable[[_Check], None], ...] = (
    _check_target,
    _check_texts,
    _check_priority,
    _check_word_fields,
    _check_resolver_fields,
    _check_parameters,
    _check_name_parameters,
    _check_placeholders,
    _check_name_count,
)


def validate_record(
    obj: object, kind: Kind, *, check_target: bool = True, parse_constraints: bool = True
) -> PluginInfo:
    """Check a record returned by a hook for ``kind``; raise ConfigurationError.

    Every field is checked by exact type (a ``str`` subclass with its own
    ``__eq__`` is refused before it is compared), within the limits above, one
    row of :data:`_CHECKS` after the other. ``parse_constraints=False`` (records
    read back from the cache) checks the shape of each constraint's specifier
    without importing packaging.
    """
    if type(obj) is not PluginInfo:
        raise ConfigurationError(
            f"expected a plugin_registry.PluginInfo, got {type(obj).__name__}", subject="record"
        )
    if type(obj.name) is not str or not obj.name:
        raise ConfigurationError("record: name must be a non-empty string", subject="record")
    check = _Check(obj, f"record {obj.name[:MAX_NAME_LENGTH]!r}", check_target, parse_constraints)
    _check_identity(check, kind)
    for row in _CHECKS:
        row(check)
    return obj


#: The shape of a PEP 440 specifier set, for records read back from the cache:
#: parsing with packaging would cost every warm start its import (~15 ms).
_SPECIFIERS_RE = re.compile(
    r"^\s*(~=|===|==|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+\s*"
    r"(,\s*(~=|===|==|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+\s*)*$"
)


def _check_constraints(constraints: Mapping[str, Any], where: str, parse: bool = True) -> None:
    if not constraints:
        return

    for key, value in constraints.items():
        if type(key) is not str or not _ACCELERATOR_RE.match(key):
            raise ConfigurationError(
                f"{where}: constraint key {_short(key)} is not a lowercase word", subject="record"
            )
        _check_text(value, where, f"constraint {key}", MAX_NAME_LENGTH)
        if not parse:
            if not _SPECIFIERS_RE.match(value):
                raise ConfigurationError(
                    f"{where}: constraint {key}={value!r} is not a version specifier such as "
                    "'>=8.9'",
                    subject="record",
                )
            continue
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        try:
            SpecifierSet(value)
        except (InvalidSpecifier, TypeError) as exc:
            raise ConfigurationError(
                f"{where}: constraint {key}={value!r} is not a version specifier such as '>=8.9'",
                subject="record",
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

    @functools.cached_property
    def key(self) -> str:  # asked several times per package by each discovery
        return f"{self.distribution}:{self.name}"

    def to_list(self) -> list[Any]:
        return [self.distribution, self.version, self.name, self.value, self.metadata_dir]

    @classmethod
    def from_list(cls, data: list[Any]) -> EntryPointRef:
        """What :meth:`to_list` wrote (``cache.Cached.parse`` has checked its shape)."""
        if len(data) != 5:
            raise ValueError(f"an entry point is 5 values, not {len(data)}")
        ref = object.__new__(cls)  # the 5 assignments of a frozen __init__, in one
        ref.__dict__.update(zip(_REF_FIELDS, data, strict=True))
        return ref


_REF_FIELDS = tuple(f.name for f in dataclasses.fields(EntryPointRef))


@dataclasses.dataclass
class Collected:
    """What one entry point yielded, and the files that result depends on."""

    records: list[PluginInfo]
    problems: list[Problem]
    deps: dict[str, int | None]
    collected_at: float
    #: Hooks beyond the record hooks that the registration module implements.
    hooks: list[str] = dataclasses.field(default_factory=list)
    #: What the registration module and its hooks wrote to stdout and stderr.
    output: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": [r.to_dict() for r in self.records],
            "names": [r.names() for r in self.records],
            "problems": [p.to_dict() for p in self.problems],
            "deps": self.deps,
            "collected_at": self.collected_at,
            "hooks": list(self.hooks),
            "output": self.output,
        }

    @classmethod
    def from_cache(cls, data: Mapping[str, Any]) -> Collected:
        """:meth:`from_dict` of what :meth:`to_dict` wrote (with the records' names) when
        its records had passed validation: see :meth:`PluginInfo.from_cache`."""
        records, names = data["records"], data["names"]
        if len(records) != len(names):
            raise ValueError("a name list per record")
        return cls(
            records=[PluginInfo.from_cache(r, n) for r, n in zip(records, names, strict=True)],
            problems=[Problem.from_dict(p) for p in data["problems"]],
            deps=dict(data["deps"]),
            collected_at=data["collected_at"],
            hooks=list(data["hooks"]),
            output=data.get("output", ""),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Collected:
        return cls(
            records=[PluginInfo.from_dict(r) for r in data["records"]],
            problems=[Problem.from_dict(p) for p in data["problems"]],
            deps=dict(data["deps"]),
            collected_at=data["collected_at"],
            hooks=list(data["hooks"]),
            output=data.get("output", ""),
        )


def as_list(plugins: Any) -> list[Any]:
    """A ``plugins=`` setting as a list: None is empty; one plugin (a name, a record, an
    instance) is a list of one."""
    if plugins is None:
        return []
    if isinstance(plugins, (str, PluginInfo)) or not isinstance(plugins, Iterable):
        return [plugins]
    return list(plugins)
