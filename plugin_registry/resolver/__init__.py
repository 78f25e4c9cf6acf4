"""The resolver: the best installed plugins for this hardware and these settings.

Built on the core registry, never the other way round (tests/test_invariants.py
checks the layers with import-linter)::

    from plugin_registry.resolver import resolve

    resolution = resolve(precision="bf16-mixed", strategy="fsdp")
    print(resolution.explain())

Modules: :mod:`~.choosing` (the resolver: one plugin per slot, by its rules),
:mod:`~.settings` (Lightning's spellings), :mod:`~.settled_job` (settings
settled on the hardware), :mod:`~.verdicts` (why a candidate cannot serve a
job), :mod:`~.hardware` (detection; the records live in
:mod:`plugin_registry.machine`), :mod:`~.preferences`, :mod:`~.resolution` (the
result), :mod:`~.lockfile` (a resolution written down), :mod:`~.agreement`
(resolving against a lock and across ranks), :mod:`~.detection` (which launcher
started this process).
"""

from __future__ import annotations

from plugin_registry.errors import ResolutionError
from plugin_registry.machine import Device, Hardware
from plugin_registry.resolver.agreement import resolve_locked, resolve_on_all_ranks
from plugin_registry.resolver.choosing import Resolver, resolve
from plugin_registry.resolver.detection import detect_environment, detection_order
from plugin_registry.resolver.hardware import detect_hardware
from plugin_registry.resolver.lockfile import Lock, LockedPlugin
from plugin_registry.resolver.preferences import Preferences
from plugin_registry.resolver.resolution import Candidate, Choice, Resolution
from plugin_registry.resolver.settings import Settings, parse_settings

__all__ = [
    "Candidate",
    "Choice",
    "Device",
    "Hardware",
    "Lock",
    "LockedPlugin",
    "Preferences",
    "Resolution",
    "ResolutionError",
    "Resolver",
    "Settings",
    "detect_environment",
    "detect_hardware",
    "detection_order",
    "parse_settings",
    "resolve",
    "resolve_locked",
    "resolve_on_all_ranks",
]
