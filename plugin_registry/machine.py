"""The machine a job runs on, as plain records: :class:`Device` and :class:`Hardware`.

Data only (the core's layer): plugin packages return :class:`Device` records from
the ``plugin_registry_detect_hardware`` hook, the resolver plans on a
:class:`Hardware` record, and a record written on one machine
(``plugin-registry hardware --json``) is read back on another. Detecting this
machine's hardware is the resolver's job (:mod:`plugin_registry.resolver.hardware`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from plugin_registry import _schema
from plugin_registry._atomic_write import atomic_write_text
from plugin_registry.errors import ConfigurationError
from plugin_registry.names import normalize_distribution

FORMAT = 1
#: How a hardware record file that cannot be read is reported.
_error = functools.partial(ConfigurationError, subject="hardware")

_ALL_FLOATS = ("float64", "float32", "float16", "bfloat16")


@dataclasses.dataclass(frozen=True)
class Device:
    """One accelerator device.

    ``properties`` are strings so that record constraints compare them as
    versions (``compute_capability >= 8.9``, ``memory_gib >= 40``).
    """

    accelerator: str
    index: int = dataclasses.field(
        default=0, metadata=_schema.check_field(lambda i: "must not be negative" if i < 0 else None)
    )
    name: str = ""
    dtypes: tuple[str, ...] = ("float32",)
    properties: Mapping[str, str] = dataclasses.field(
        default_factory=dict,
        # numbers are read too, and kept as strings
        metadata={"read_as": Mapping[str, str | int | float]},
    )

    #: How a hardware record refuses a field a device does not have.
    UNKNOWN_FIELD: ClassVar[str] = "is not a device field: a device entry is malformed"
    LABEL: ClassVar[str] = "device"

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtypes", tuple(self.dtypes))
        object.__setattr__(
            self, "properties", MappingProxyType({k: str(v) for k, v in self.properties.items()})
        )

    def label(self) -> str:
        """``CUDA device 0 (NVIDIA H100, compute capability 9.0)``."""
        detail = [self.name] if self.name else []
        if "compute_capability" in self.properties:
            detail.append(f"compute capability {self.properties['compute_capability']}")
        suffix = f" ({', '.join(detail)})" if detail else ""
        return f"{self.accelerator.upper()} device {self.index}{suffix}"

    def to_dict(self) -> dict[str, Any]:
        return _schema.dump(self)


@dataclasses.dataclass(frozen=True)
class Hardware:
    """The machine a job runs on, as the resolver sees it."""

    cpu_cores: int = dataclasses.field(
        metadata=_schema.check_field(lambda n: "must be a positive integer" if n < 1 else None)
    )
    devices: tuple[Device, ...] = ()
    cpu_dtypes: tuple[str, ...] = _ALL_FLOATS
    cpu_capability: str = ""
    torch: str | None = None
    libraries: Mapping[str, str | None] = dataclasses.field(default_factory=dict)
    platform: str = ""
    sources: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    LABEL: ClassVar[str] = "hardware record"

    def __post_init__(self) -> None:
        object.__setattr__(self, "devices", tuple(self.devices))
        object.__setattr__(self, "cpu_dtypes", tuple(self.cpu_dtypes))
        object.__setattr__(self, "sources", tuple(self.sources))
        object.__setattr__(self, "problems", tuple(self.problems))
        libraries = {normalize_distribution(k): v for k, v in self.libraries.items()}
        if self.torch is not None:
            libraries.setdefault("torch", self.torch)
        object.__setattr__(self, "libraries", MappingProxyType(libraries))

    @property
    def accelerators(self) -> tuple[str, ...]:
        """``cpu`` and every accelerator with at least one device."""
        return ("cpu", *sorted({d.accelerator for d in self.devices}))

    def devices_of(self, accelerator: str) -> tuple[Device, ...]:
        return tuple(d for d in self.devices if d.accelerator == accelerator)

    def count(self, accelerator: str) -> int:
        if accelerator == "cpu":
            return self.cpu_cores
        return len(self.devices_of(accelerator))

    def version(self, distribution: str) -> str | None:
        """The installed version of ``distribution`` on that machine, or None."""
        return self.libraries.get(normalize_distribution(distribution))

    def records(self, distribution: str) -> bool:
        """Whether the record says anything of ``distribution`` (installed or not)."""
        return normalize_distribution(distribution) in self.libraries

    def with_libraries(self, libraries: Mapping[str, str | None]) -> Hardware:
        """These devices with another machine's libraries (plan a job on that hardware
        with the packages installed here: ``resolve --hardware FILE --libraries here``)."""
        torch = libraries.get("torch", self.torch)
        return dataclasses.replace(self, libraries=dict(libraries), torch=torch)

    def summary(self) -> str:
        """One line: ``2 x CUDA (NVIDIA H100, 9.0), 16 CPU cores, torch 2.13.0``."""
        parts: list[str] = []
        for accel in self.accelerators[1:]:
            devices = self.devices_of(accel)
            names = sorted({d.name for d in devices if d.name})
            caps = sorted({d.properties.get("compute_capability", "") for d in devices} - {""})
            detail = ", ".join(names + caps)
            parts.append(f"{len(devices)} x {accel.upper()}" + (f" ({detail})" if detail else ""))
        parts.append(f"{self.cpu_cores} CPU cores")
        parts.append(f"torch {self.torch}" if self.torch else "no torch")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **_schema.dump(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "hardware record") -> Hardware:
        """Inverse of :meth:`to_dict`; raises a ConfigurationError naming the bad field."""
        data = dict(data) if isinstance(data, Mapping) else data
        found = data.pop("format", FORMAT) if isinstance(data, dict) else FORMAT
        if found != FORMAT:
            raise _error(
                f"{where}: format {found!r} is not {FORMAT}; write it again "
                "with `plugin-registry hardware --json` from this version",
            )
        hardware: Hardware = _schema.load(cls, data, _schema.Checker(where, _error))
        return hardware

    def dump(self, path: str | os.PathLike[str]) -> None:
        """Write the record atomically (the core's one atomic writer)."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Hardware:
        """Read a record written by ``plugin-registry hardware --json``; one-line errors."""
        record: Hardware = _schema.read_record(
            cls,
            path,
            "hardware file",
            _error,
            "write one with `plugin-registry hardware --json > FILE` on the target machine",
        )
        return record
