"""Settings settled against the hardware: the job every candidate is judged against.

``accelerator="auto"`` becomes the accelerator found, ``devices=-1`` the
devices there are, ``strategy="auto"`` Lightning's default for that many
processes, and ``precision="16-mixed"`` on the CPU ``bf16-mixed``, each as
Lightning settles it. What cannot be settled here is a
:class:`~plugin_registry.errors.ResolutionError` naming what was found.
"""

from __future__ import annotations

import dataclasses
import warnings

from plugin_registry.errors import PluginRegistryWarning, ResolutionError
from plugin_registry.machine import Device, Hardware
from plugin_registry.resolver.settings import STRATEGIES, Settings

# accelerator="auto" tries these in Lightning's order; third-party kinds come before the CPU.
_AUTO_ORDER = ("xla", "mps", "cuda")


@dataclasses.dataclass(frozen=True, eq=False)
class Job:
    """The settled settings: one accelerator, the devices used, one strategy name."""

    precision: str
    accelerator: str
    strategy: str
    devices: tuple[Device, ...]
    device_count: int
    num_nodes: int
    hardware: Hardware

    @property
    def family(self) -> str:
        return STRATEGIES[self.strategy].family

    @property
    def shards_parameters(self) -> bool:
        return STRATEGIES[self.strategy].shards_parameters

    def judged_devices(self) -> tuple[Device, ...]:
        """The devices a plugin's constraints and dtypes are checked on (the CPU as one)."""
        if self.accelerator == "cpu":
            hw = self.hardware
            cores = {"cores": str(hw.cpu_cores)}
            return (Device("cpu", 0, hw.cpu_capability, hw.cpu_dtypes, cores),)
        return self.devices

    def settings(self) -> Settings:
        """The settled values in the shape the user wrote them in."""
        return Settings(
            precision=self.precision,
            accelerator=self.accelerator,
            strategy=self.strategy,
            devices=self.device_count,
            num_nodes=self.num_nodes,
        )


def settle(
    settings: Settings, hardware: Hardware, precision_plugin: str | None, notes: list[str]
) -> Job:
    """The :class:`Job` for ``settings`` on ``hardware``; translations appended to ``notes``.

    ``precision_plugin`` is the name of an explicitly requested precision
    plugin: it is the job's precision then.
    """
    accel = _accelerator(settings.accelerator, hardware)
    devices, count = _devices(settings.devices, accel, hardware)
    strategy = _strategy(settings.strategy, accel, count * settings.num_nodes, notes)
    if precision_plugin is not None:
        precision = precision_plugin
    else:
        precision = _precision(settings.precision or "32-true", accel, notes)
    return Job(precision, accel, strategy, devices, count, settings.num_nodes, hardware)


def _accelerator(accel: str, hw: Hardware) -> str:
    if accel == "tpu" and "xla" in hw.accelerators:
        return "xla"  # Lightning's name for the TPU accelerator
    if accel == "auto":
        present = set(hw.accelerators)
        third = sorted(present - {"cpu", *_AUTO_ORDER})
        return next((a for a in (*_AUTO_ORDER, *third) if a in present), "cpu")
    if accel == "gpu":
        found = next((a for a in ("mps", "cuda") if a in hw.accelerators), "")
        if not found:
            raise ResolutionError(
                f"accelerator='gpu' but this hardware has no CUDA or MPS device "
                f"({hw.summary()}); use accelerator='cpu' or 'auto'"
            )
        return found
    if accel != "cpu" and accel not in hw.accelerators:
        what = "TPU (XLA)" if accel == "tpu" else accel.upper()
        raise ResolutionError(
            f"accelerator={accel!r} but no {what} device was found ({hw.summary()})"
            + (f"; detection problems: {'; '.join(hw.problems)}" if hw.problems else "")
            + "; use accelerator='cpu' or 'auto', or plan with a hardware record of the "
            "target machine (--hardware FILE)"
        )
    return accel


def _devices(
    devices: str | int | tuple[int, ...], accel: str, hw: Hardware
) -> tuple[tuple[Device, ...], int]:
    if accel == "cpu":
        if devices == "auto":
            return (), 1
        if isinstance(devices, int):
            return (), devices
        raise ResolutionError(
            f"devices={devices!r} on the CPU: give a number of processes (devices=2), "
            "not 'all' or device indices"
        )
    found = hw.devices_of(accel)
    if devices in ("auto", "all"):
        return found, len(found)
    if isinstance(devices, int):
        if devices > len(found):
            raise ResolutionError(
                f"devices={devices} but only {len(found)} {accel.upper()} device(s) found "
                f"({hw.summary()}); ask for at most {len(found)} or -1 for all"
            )
        return found[:devices], devices
    assert isinstance(devices, tuple)
    by_index = {d.index: d for d in found}
    missing = [i for i in devices if i not in by_index]
    if missing:
        raise ResolutionError(
            f"devices={list(devices)}: no {accel.upper()} device with index "
            f"{', '.join(map(str, missing))} (found indices {sorted(by_index)})"
        )
    return tuple(by_index[i] for i in devices), len(devices)


def _strategy(strategy: str, accel: str, world: int, notes: list[str]) -> str:
    if strategy == "auto":
        if accel == "xla":
            return "xla" if world > 1 else "single_xla"
        return "ddp" if world > 1 else "single_device"
    if strategy == "fsdp" and accel == "xla":
        notes.append("strategy='fsdp' on XLA devices is 'xla_fsdp' (as Lightning does)")
        return "xla_fsdp"
    if strategy == "dp" and accel == "cpu":
        notes.append("strategy='dp' is not supported on CPUs: using 'ddp' (as Lightning does)")
        return "ddp"
    family = STRATEGIES[strategy].family
    if accel == "xla" and family != "xla":
        raise ResolutionError(
            f"strategy={strategy!r} does not run on XLA devices; use 'xla', 'xla_fsdp', "
            "'single_xla' or 'auto'"
        )
    if family == "xla" and accel != "xla":
        raise ResolutionError(
            f"strategy={strategy!r} needs accelerator='xla' (TPU or PJRT), but this job "
            f"runs on {accel}; use strategy 'ddp' or 'auto'"
        )
    return strategy


def _precision(precision: str, accel: str, notes: list[str]) -> str:
    if precision == "16-mixed" and accel == "cpu":
        note = (
            "precision='16-mixed' on the CPU: float16 autocast is not supported there, "
            "using 'bf16-mixed' instead (as Lightning does)"
        )
        notes.append(note)
        # caller -> resolve() -> Resolver.resolve -> _settle -> settle -> here: name the caller.
        warnings.warn(note, PluginRegistryWarning, stacklevel=6)
        return "bf16-mixed"
    return precision
