"""What this machine can run: accelerators, their properties, installed libraries.

:func:`detect_hardware` returns a plain :class:`Hardware` record, cached for the
process. The resolver works on that record only, so a record written on one
machine (``plugin-registry hardware --json > gpu-node.json``) plans a job for
it anywhere (``plugin-registry resolve --hardware gpu-node.json``).

What is looked at, and what is not imported to look:

* torch (imported: the resolver runs where training runs) for CUDA devices,
  their compute capability and memory, MPS, and the CPU's vector capability;
* torch_xla only when it is installed *and* this process is meant to use it
  (already imported, or ``PJRT_DEVICE`` / ``TPU_NAME`` /
  ``TPU_ACCELERATOR_TYPE`` set): importing it costs seconds and fails against
  a torch it was not built for;
* every library a plugin record requires: its version from installed
  metadata, never by importing it;
* devices reported by third-party packages through the
  ``plugin_registry_detect_hardware`` hook (:mod:`plugin_registry.hookspecs`).
"""

from __future__ import annotations

import os
import platform
import sys
import threading
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING

from plugin_registry import _capture
from plugin_registry._text import describe
from plugin_registry.machine import FORMAT, Device, Hardware
from plugin_registry.names import normalize_distribution

__all__ = [
    "ENV_HARDWARE",
    "FORMAT",
    "Device",
    "Hardware",
    "detect_hardware",
]

if TYPE_CHECKING:
    from plugin_registry.registry import Registry

#: A hardware record file to use instead of detecting (planning, tests).
ENV_HARDWARE = "PLUGIN_REGISTRY_HARDWARE"
_XLA_ENV = ("PJRT_DEVICE", "TPU_NAME", "TPU_ACCELERATOR_TYPE")


_cached: Hardware | None = None
_lock = threading.Lock()


def detect_hardware(registry: Registry | None = None, *, refresh: bool = False) -> Hardware:
    """This machine's :class:`Hardware`, detected once per process.

    ``PLUGIN_REGISTRY_HARDWARE=FILE`` replaces detection with a written record.
    """
    global _cached
    path = os.environ.get(ENV_HARDWARE, "").strip()
    if path:
        return Hardware.load(path)
    with _lock:
        if _cached is None or refresh:
            _cached = _detect(registry)
        return _cached


def _detect(registry: Registry | None) -> Hardware:
    from plugin_registry._default import default_registry
    from plugin_registry.requirements import installed_version

    registry = registry or default_registry()
    problems: list[str] = []
    sources: list[str] = []
    devices: list[Device] = []
    cpu_capability = ""
    torch_version = installed_version("torch")
    if torch_version is not None:
        sources.append("torch")
        try:
            cpu_capability, found = _torch_devices()
            devices.extend(found)
        except Exception as exc:  # noqa: BLE001 - a broken CUDA driver must not stop planning
            problems.append(f"torch device query failed: {describe(exc)}")
    if installed_version("torch_xla") and _xla_wanted():
        sources.append("torch_xla")
        try:
            devices.extend(_xla_devices())
        except Exception as exc:  # noqa: BLE001 - see _xla_wanted
            problems.append(f"torch_xla device query failed: {describe(exc)}")
    for source, found_or_error in _hook_devices(registry):
        if isinstance(found_or_error, str):
            problems.append(f"{source}: {found_or_error}")
        else:
            sources.append(source)
            devices.extend(found_or_error)
    libraries = installed_libraries(registry)
    return Hardware(
        cpu_cores=_cpu_cores(),
        devices=tuple(devices),
        cpu_capability=cpu_capability,
        torch=torch_version,
        libraries=libraries,
        platform=f"{sys.platform}-{platform.machine()}",
        sources=tuple(sources),
        problems=tuple(problems),
    )


def _cpu_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _torch_devices() -> tuple[str, list[Device]]:
    with warnings.catch_warnings():
        # torch's CPU wheel does not pull numpy, and without it `import torch` warns
        # "Failed to initialize NumPy" on every start: nothing the resolver uses.
        warnings.filterwarnings("ignore", message="Failed to initialize NumPy", module="torch")
        import torch

    devices: list[Device] = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            dtypes = ["float64", "float32", "float16"]
            if props.major >= 8:
                dtypes.append("bfloat16")
            devices.append(
                Device(
                    "cuda",
                    index,
                    props.name,
                    tuple(dtypes),
                    {
                        "compute_capability": f"{props.major}.{props.minor}",
                        "memory_gib": f"{props.total_memory / 2**30:.1f}",
                        "multiprocessors": str(props.multi_processor_count),
                    },
                )
            )
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        # MPS has no float64.
        devices.append(Device("mps", 0, "Apple MPS", ("float32", "float16", "bfloat16")))
    return str(torch.backends.cpu.get_cpu_capability()), devices


def _xla_wanted() -> bool:
    return "torch_xla" in sys.modules or any(os.environ.get(v) for v in _XLA_ENV)


def _xla_devices() -> list[Device]:
    import torch_xla.runtime as xr

    kind = str(xr.device_type() or "")
    count = int(xr.global_runtime_device_count())
    dtypes = ("float32", "bfloat16", "float16")
    return [Device("xla", i, kind, dtypes, {"device_type": kind}) for i in range(count)]


def _hook_devices(registry: Registry) -> Iterable[tuple[str, list[Device] | str]]:
    refs = registry.implementers("plugin_registry_detect_hardware")
    if not refs:
        return
    manager = registry.plugin_manager(refs)
    for impl in manager.hook.plugin_registry_detect_hardware.get_hookimpls():
        source = str(impl.plugin_name)
        interrupts = _capture.Interrupts()
        try:
            # A package's detection may print; it must not reach `hardware --json`.
            with _capture.captured(), interrupts:
                returned = impl.function()
        except BaseException as exc:
            if interrupts.is_real(exc):
                raise
            yield source, f"plugin_registry_detect_hardware() raised {describe(exc)}"
            continue
        if not isinstance(returned, (list, tuple)) or not all(
            isinstance(d, Device) for d in returned
        ):
            yield (
                source,
                (
                    "plugin_registry_detect_hardware() must return a list of "
                    f"plugin_registry.machine.Device, got {returned!r:.80}"
                ),
            )
            continue
        yield source, list(returned)


def installed_libraries(registry: Registry) -> dict[str, str | None]:
    """This machine's version (None: not installed) of every library a plugin requires."""
    from plugin_registry.requirements import installed_version

    return {name: installed_version(name) for name in _required_libraries(registry)}


def _required_libraries(registry: Registry) -> list[str]:
    from plugin_registry.requirements import requirement_name

    names = {"torch"}
    for record in registry.list_plugins():
        for text in record.requires:
            try:
                names.add(normalize_distribution(requirement_name(text)))
            except ValueError:
                continue
    return sorted(names)
