"""Which cluster environment this process runs in.

Every available cluster-environment plugin is asked, highest ``priority``
first (ties by name), whether its launcher started this process; the first
that says yes wins. The built-ins' order follows Lightning's and extends it:

=========================  ========  ==========================================
plugin                     priority  detected when
=========================  ========  ==========================================
``torchelastic``           50        ``TORCHELASTIC_RUN_ID`` (torchrun) -- also
                                     inside a SLURM or LSF allocation
``slurm``                  40        ``SLURM_NTASKS``, unless the job is named
                                     ``bash``/``interactive`` outside a job step
``lsf``                    30        ``LSB_JOBID``, ``LSB_DJOB_RANKFILE``,
                                     ``JSM_NAMESPACE_LOCAL_RANK``, ``JSM_NAMESPACE_SIZE``
``sge``                    25        ``JOB_ID``, ``PE_HOSTFILE``, ``NSLOTS``
``mpi``                    20        an MPI launcher's world size above 1
``xla``                    10        ``PJRT_DEVICE`` and torch_xla installed
``kubeflow``               -50       never: name it
``lightning``              -100      always (the default)
=========================  ========  ==========================================

A third-party environment takes its place in the same order through its
record's ``priority`` (above 50 to win even over torchrun).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from plugin_registry import _capture
from plugin_registry._text import describe
from plugin_registry.errors import PluginNotFoundError, PluginWarning
from plugin_registry.records import PluginInfo

if TYPE_CHECKING:
    from plugin_registry.registry import Registry


#: How :func:`launched_by` begins its answer for an environment that sets
#: ``auto_detect = False``: not a failure, so nobody is warned.
NEVER_DETECTED = "never detected automatically"


def launched_by(registry: Registry, record: PluginInfo) -> bool | str:
    """Whether ``record``'s environment started this process; a string says why it could not tell.

    Imports the environment's module; one plugin's failure never escapes.
    """
    interrupts = _capture.Interrupts()
    slow = (
        f"plugin-registry: still asking the cluster environment {record.name!r} of "
        f"{record.distribution} whether it started this process (its detect()) after "
        f"{_capture.SLOW_SECONDS:g} s. If it hangs, skip it with "
        f"PLUGIN_REGISTRY_BLOCK='{record.distribution}:{record.name}', or name the "
        "environment to use (plugins=['slurm'], --plugin slurm) so that none is detected\n"
    )
    try:
        # Implicit (every resolve asks every environment): its output is captured,
        # and a detect() that blocks is named on the real stderr.
        with _capture.captured(), interrupts, _capture.slow_warning(slow):
            target = registry.load_target(record)
            if not getattr(target, "auto_detect", True):
                return f"{NEVER_DETECTED}: name it (plugins=[{record.name!r}])"
            return bool(target.detect())
    except BaseException as exc:
        if interrupts.is_real(exc):
            raise
        return f"its detect() failed: {describe(exc)}"


def detection_order(registry: Registry | None = None) -> list[PluginInfo]:
    """Available cluster environments in the order they are asked."""
    from plugin_registry._default import default_registry

    registry = registry or default_registry()
    records = [r for r in registry.list_plugins("cluster_environment") if r.available]
    return sorted(records, key=lambda r: (-r.priority, r.name))


def detect_environment(registry: Registry | None = None) -> PluginInfo:
    """The record of the environment whose launcher started this process.

    Detection reads environment variables only (and files they name); no torch
    import. A plugin whose ``detect()`` raises is skipped with a PluginWarning.
    """
    from plugin_registry._default import default_registry

    registry = registry or default_registry()
    for record in detection_order(registry):
        found = launched_by(registry, record)
        if isinstance(found, str) and found.startswith(NEVER_DETECTED):
            continue
        if isinstance(found, str):
            warnings.warn(
                f"skipping cluster environment {record.qualified_name!r}: {found}",
                PluginWarning,
                stacklevel=2,
            )
        elif found:
            return record
    raise PluginNotFoundError(
        "no cluster environment detected and no default available; install plugin-registry's "
        "built-ins (the 'lightning' environment always matches) or register one"
    )
