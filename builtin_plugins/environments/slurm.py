"""SLURMEnvironment: processes started by ``srun``."""

from __future__ import annotations

import os
import signal

from builtin_plugins.environments.hostlist import expand_hostlist, first_host, tasks_per_node
from builtin_plugins.environments.variables import get, get_int, parse_count, port_from_job_id
from plugin_registry.errors import ClusterEnvironmentError
from plugin_registry.kinds.cluster_environment import ClusterEnvironment

_WHO = "is this process started by srun?"
_INTERACTIVE_NAMES = ("bash", "interactive")


def _is_interactive() -> bool:
    """The job was named to opt out of SLURM detection (Lightning's rule)."""
    return os.environ.get("SLURM_JOB_NAME") in _INTERACTIVE_NAMES


def _nodelist() -> tuple[str, str]:
    for variable in ("SLURM_NODELIST", "SLURM_JOB_NODELIST"):
        if os.environ.get(variable):
            return variable, os.environ[variable]
    return "SLURM_NODELIST", ""


def _in_job_step() -> bool:
    """A task of a job step: ``srun`` sets SLURM_STEP_ID; the allocation's shell has none."""
    return parse_count(os.environ.get("SLURM_STEP_ID", ""), digits=12) is not None


class SLURMEnvironment(ClusterEnvironment):
    """Ranks from SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID / SLURM_NODEID.

    The main address is ``MASTER_ADDR`` or the first host of ``SLURM_NODELIST``
    (parsed fully: :attr:`hosts` lists them all); the main port is
    ``MASTER_PORT`` or 15000 plus the last four digits of the job id, so every
    task computes the same one. Unlike Lightning's class it never writes to
    ``os.environ`` (see :meth:`export_distributed_env`), it detects ``srun``
    steps inside an interactive allocation (``salloc``), and it reports an
    allocation with fewer tasks than tasks-per-node times nodes.
    """

    def __init__(self, auto_requeue: bool = True, requeue_signal: int | None = None) -> None:
        self.auto_requeue = auto_requeue
        self.requeue_signal = signal.SIGUSR1 if requeue_signal is None else requeue_signal

    @property
    def creates_processes_externally(self) -> bool:
        return True

    @property
    def hosts(self) -> list[str]:
        """Every host of the job, from ``SLURM_NODELIST`` (or ``SLURM_JOB_NODELIST``)."""
        variable, nodelist = _nodelist()
        return expand_hostlist(nodelist, variable) if nodelist else ["127.0.0.1"]

    @property
    def main_address(self) -> str:
        """``MASTER_ADDR``, else the first host of the node list (the rest is not expanded)."""
        if os.environ.get("MASTER_ADDR"):
            return os.environ["MASTER_ADDR"]
        variable, nodelist = _nodelist()
        return first_host(nodelist, variable) if nodelist else "127.0.0.1"

    @staticmethod
    def resolve_root_node_address(nodes: str) -> str:
        """The first host of a SLURM node list (``host[5-9]`` -> ``host5``), as Lightning's
        method of this name; a malformed list is a ClusterEnvironmentError (a ValueError)
        saying why."""
        return first_host(nodes, "the node list")

    @property
    def main_port(self) -> int:
        job_id = os.environ.get("SLURM_JOB_ID")
        if job_id is None and "MASTER_PORT" not in os.environ:
            return 12910
        return port_from_job_id(job_id or "", "SLURM_JOB_ID", _WHO)

    @staticmethod
    def detect() -> bool:
        if "SLURM_NTASKS" not in os.environ:
            return False
        return not _is_interactive() or _in_job_step()

    @staticmethod
    def job_name() -> str | None:
        return os.environ.get("SLURM_JOB_NAME")

    @staticmethod
    def job_id() -> int | None:
        if _is_interactive() and not _in_job_step():
            return None
        job_id = os.environ.get("SLURM_JOB_ID")
        return parse_count(job_id, digits=12) if job_id is not None else None

    def world_size(self) -> int:
        return get_int("SLURM_NTASKS", _WHO)

    def set_world_size(self, size: int) -> None:
        pass  # fixed by SLURM

    def global_rank(self) -> int:
        return get_int("SLURM_PROCID", _WHO)

    def set_global_rank(self, rank: int) -> None:
        pass  # fixed by SLURM

    def local_rank(self) -> int:
        return get_int("SLURM_LOCALID", _WHO)

    def node_rank(self) -> int:
        return get_int("SLURM_NODEID", _WHO)

    def tasks_on_this_node(self) -> int:
        """``--ntasks-per-node``, or this node's share of ``SLURM_TASKS_PER_NODE``."""
        if "SLURM_NTASKS_PER_NODE" in os.environ:
            return get_int("SLURM_NTASKS_PER_NODE", _WHO)
        counts = tasks_per_node(get("SLURM_TASKS_PER_NODE", _WHO))
        node = self.node_rank() if "SLURM_NODEID" in os.environ else 0
        if node >= len(counts):
            raise ClusterEnvironmentError(
                f"SLURM_NODEID={node} but SLURM_TASKS_PER_NODE="
                f"{os.environ['SLURM_TASKS_PER_NODE']!r} lists {len(counts)} node(s)",
                reason="invalid-variable",
            )
        return counts[node]

    def validate_settings(self, num_devices: int, num_nodes: int) -> None:
        if _is_interactive() and not _in_job_step():
            return
        ntasks = get_int("SLURM_NTASKS", _WHO, default=1)
        per_node_var = os.environ.get("SLURM_NTASKS_PER_NODE")
        nnodes = os.environ.get("SLURM_NNODES")
        if per_node_var is not None:
            per_node = get_int("SLURM_NTASKS_PER_NODE", _WHO)
            if per_node != num_devices:
                raise ClusterEnvironmentError(
                    f"You set devices={num_devices}, but SLURM runs --ntasks-per-node={per_node} "
                    f"(SLURM_NTASKS_PER_NODE). Set devices={per_node}.",
                    reason="settings-mismatch",
                )
            n = get_int("SLURM_NNODES", _WHO, default=1)
            if ntasks < per_node * n:
                raise ClusterEnvironmentError(
                    f"The allocation runs SLURM_NTASKS={ntasks} task(s), fewer than "
                    f"--ntasks-per-node={per_node} x {n} node(s): only {ntasks} process(es) will "
                    f"start while {per_node * n} are expected. Ask for --ntasks={per_node * n} "
                    f"or --ntasks-per-node={max(1, ntasks // n)}.",
                    reason="settings-mismatch",
                )
        elif ntasks > 1:
            counts = tasks_per_node(get("SLURM_TASKS_PER_NODE", _WHO))
            if len(set(counts)) > 1:
                raise ClusterEnvironmentError(
                    f"--ntasks={ntasks} was spread unevenly over the nodes "
                    f"(SLURM_TASKS_PER_NODE={os.environ['SLURM_TASKS_PER_NODE']!r}); use "
                    "--ntasks-per-node so that every node runs as many tasks as devices.",
                    reason="settings-mismatch",
                )
            if counts[0] != num_devices:
                raise ClusterEnvironmentError(
                    f"You set devices={num_devices}, but SLURM runs {counts[0]} task(s) per node "
                    f"(SLURM_TASKS_PER_NODE={os.environ['SLURM_TASKS_PER_NODE']!r}). "
                    f"Set devices={counts[0]}.",
                    reason="settings-mismatch",
                )
        if nnodes is not None and get_int("SLURM_NNODES", _WHO) != num_nodes:
            raise ClusterEnvironmentError(
                f"You set num_nodes={num_nodes}, but SLURM allocated --nodes={nnodes} "
                f"(SLURM_NNODES). Set num_nodes={nnodes}.",
                reason="settings-mismatch",
            )
