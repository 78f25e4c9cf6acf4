"""The training settings the resolver reads, spelled as Lightning users write them.

:func:`parse_settings` checks and normalises ``precision``, ``accelerator``,
``strategy``, ``devices`` and ``num_nodes``; what depends on the hardware
(``accelerator="auto"``, ``devices=-1``, ``strategy="auto"``) is settled later
by the resolver against a :class:`~plugin_registry.resolver.hardware.Hardware` record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

from plugin_registry import _schema
from plugin_registry.errors import ConfigurationError
from plugin_registry.kinds.precision import (
    OWN_PRECISION_FAMILIES as OWN_PRECISION_FAMILIES,
)
from plugin_registry.kinds.precision import PRECISIONS as PRECISIONS
from plugin_registry.kinds.precision import SHORT_PRECISIONS as SHORT_PRECISIONS
from plugin_registry.names import did_you_mean

ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps", "tpu", "xla")


class Strategy(NamedTuple):
    """What the resolver needs to know of a strategy name."""

    name: str
    family: str
    shards_parameters: bool = False


def _strategies() -> dict[str, Strategy]:
    table: dict[str, Strategy] = {}

    def add(name: str, family: str, shards: bool = False) -> None:
        table[name] = Strategy(name, family, shards)

    add("auto", "auto")
    add("single_device", "single")
    add("dp", "ddp")
    for base in ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook"):
        add(base, "ddp")
        for flag in ("true", "false"):
            add(f"{base}_find_unused_parameters_{flag}", "ddp")
    add("fsdp", "fsdp", True)
    add("fsdp_cpu_offload", "fsdp", True)
    # DeepSpeed's stage 1 and 2 shard optimizer state and gradients, stage 3 the
    # parameters too; Lightning's plain "deepspeed" is stage 2.
    for name in (
        "deepspeed",
        "deepspeed_stage_1",
        "deepspeed_stage_2",
        "deepspeed_stage_2_offload",
    ):
        add(name, "deepspeed")
    for name in (
        "deepspeed_stage_3",
        "deepspeed_stage_3_offload",
        "deepspeed_stage_3_offload_nvme",
    ):
        add(name, "deepspeed", True)
    add("xla", "xla")
    add("xla_debug", "xla")
    add("single_xla", "xla")
    add("xla_fsdp", "xla", True)
    add("model_parallel", "model_parallel", True)
    return table


#: Strategy names Lightning registers, with their family.
STRATEGIES = _strategies()


@dataclasses.dataclass(frozen=True)
class Settings:
    """Checked settings, before the hardware settles ``auto`` and ``-1``.

    ``devices`` is ``"auto"``, ``"all"``, a count, or a tuple of device indices.
    ``notes`` records spellings that were translated (``16`` -> ``16-mixed``).
    """

    precision: str | None = None
    accelerator: str = "auto"
    strategy: str = "auto"
    devices: str | int | tuple[int, ...] = "auto"
    num_nodes: int = 1
    # Neither written to a lock nor shown: each slot's choice names the plugins.
    plugins: tuple[Any, ...] = dataclasses.field(default=(), metadata={"json": False})
    notes: tuple[str, ...] = dataclasses.field(default=(), metadata={"json": False})

    #: The fields a lock writes down and the explanation shows, in order.
    FIELDS: ClassVar[tuple[str, ...]]
    UNKNOWN_FIELD: ClassVar[str] = "is not a setting a lock records"

    def to_dict(self) -> dict[str, Any]:
        """The :attr:`FIELDS` as JSON values (device indices as a list)."""
        return _schema.dump(self)

    def given(self) -> dict[str, Any]:
        """The :attr:`FIELDS` set to something other than their default."""
        default = Settings()
        return {k: v for k, v in self.to_dict().items() if v != default.to_dict()[k]}


Settings.FIELDS = tuple(
    f.name for f in dataclasses.fields(Settings) if f.metadata.get("json", True)
)


def parse_settings(
    precision: str | int | None = None,
    accelerator: str = "auto",
    strategy: str = "auto",
    devices: str | int | Sequence[int] = "auto",
    num_nodes: int = 1,
    plugins: Iterable[Any] | None = None,
    *,
    plugin_names: Iterable[str] = (),
    extra_accelerators: Iterable[str] = (),
    plugin_summaries: Mapping[str, str] | None = None,
) -> Settings:
    """Check each setting; ``plugin_names`` are precision plugins ``precision=`` may name
    (``plugin_summaries`` their descriptions, searched for a suggestion)."""
    notes: list[str] = []
    return Settings(
        precision=_precision(precision, set(plugin_names), notes, plugin_summaries),
        accelerator=_accelerator(accelerator, extra_accelerators),
        strategy=_strategy(strategy),
        devices=_devices(devices),
        num_nodes=_num_nodes(num_nodes),
        plugins=tuple(plugins or ()),
        notes=tuple(notes),
    )


def _precision(
    value: str | int | None,
    plugin_names: set[str],
    notes: list[str],
    descriptions: Mapping[str, str] | None = None,
) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ConfigurationError(
            f"precision={value!r} is not a string or an integer; "
            f"use one of {', '.join(PRECISIONS)}",
            subject="setting",
        )
    text = str(value).strip().lower().replace("_", "-")
    if text in SHORT_PRECISIONS:
        full = SHORT_PRECISIONS[text]
        notes.append(
            f"precision={value!r} is Lightning's historical spelling of {full!r}; write {full!r}"
        )
        return full
    if text in PRECISIONS or text in plugin_names:
        return text
    accepted = [*PRECISIONS, *SHORT_PRECISIONS]
    hint = did_you_mean(text, [*accepted, *plugin_names], descriptions=descriptions) or "."
    raise ConfigurationError(
        f"precision={value!r} is not a precision Lightning knows and no precision plugin is "
        f"named so{hint} Accepted: {', '.join(accepted)}, or a precision plugin's name "
        "(plugin-registry list --kind precision)",
        subject="setting",
    )


def _accelerator(value: str, extra: Iterable[str]) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(
            f"accelerator={value!r} is not a string; use one of {ACCELERATORS}", subject="setting"
        )
    text = value.strip().lower()
    known = [*ACCELERATORS, *extra]
    if text not in known:
        raise ConfigurationError(
            f"accelerator={value!r} is not known{did_you_mean(text, known) or '.'} Accepted: "
            f"{', '.join(known)}",
            subject="setting",
        )
    return text  # "tpu" stays as written: the job settles it to "xla", errors say "tpu"


def _strategy(value: str) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(
            f"strategy={value!r} is not a strategy name; pass a name such as 'ddp' or 'fsdp'",
            subject="setting",
        )
    text = value.strip().lower()
    if text not in STRATEGIES:
        raise ConfigurationError(
            f"strategy={value!r} is not a strategy Lightning registers"
            f"{did_you_mean(text, STRATEGIES) or '.'} Accepted: "
            f"{', '.join(s for s in STRATEGIES if 'find_unused' not in s)} (and the DDP "
            "variants ending in _find_unused_parameters_true/false)",
            subject="setting",
        )
    return text


def _devices(value: str | int | Sequence[int]) -> str | int | tuple[int, ...]:
    bad = ConfigurationError(
        f"devices={value!r} is not understood; use 'auto', a count (2), -1 for all, or device "
        "indices ([0, 1] or '0,1')",
        subject="setting",
    )
    if isinstance(value, bool):
        raise bad
    if isinstance(value, str):
        text = value.strip()
        if text == "auto":
            return "auto"
        if "," in text:
            try:
                value = [int(part) for part in text.split(",") if part.strip()]
            except ValueError:
                raise bad from None
        else:
            try:
                value = int(text)
            except ValueError:
                raise bad from None
    if isinstance(value, int):
        if value == -1:
            return "all"
        if value < 1:
            raise ConfigurationError(
                f"devices={value!r}: ask for at least one device, -1 for all of them, or 'auto'",
                subject="setting",
            )
        return value
    if (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and value
        and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in value)
    ):
        if len(set(value)) != len(value):
            raise ConfigurationError(
                f"devices={list(value)!r} names a device twice", subject="setting"
            )
        return tuple(value)
    raise bad


def _num_nodes(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(
            f"num_nodes={value!r} must be a positive integer", subject="setting"
        )
    return value
