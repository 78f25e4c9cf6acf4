"""MPIEnvironment: processes started by ``mpirun`` / ``mpiexec``."""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
import socket
import zlib
from typing import Any

from builtin_plugins.environments.lightning import find_free_network_port
from builtin_plugins.environments.variables import get_int, parse_count
from plugin_registry.errors import ClusterEnvironmentError
from plugin_registry.kinds.cluster_environment import ClusterEnvironment

_WHO = "is this process started by mpirun?"

# (size, rank, local rank, local size) per launcher family. None of them names the
# node's index (OMPI_COMM_WORLD_NODE_RANK is a rank *on* the node, not of it).
_LAUNCHER_VARIABLES = (
    (
        "OMPI_COMM_WORLD_SIZE",
        "OMPI_COMM_WORLD_RANK",
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "OMPI_COMM_WORLD_LOCAL_SIZE",
    ),  # Open MPI
    (
        "MV2_COMM_WORLD_SIZE",
        "MV2_COMM_WORLD_RANK",
        "MV2_COMM_WORLD_LOCAL_RANK",
        "MV2_COMM_WORLD_LOCAL_SIZE",
    ),  # MVAPICH
    ("PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"),  # MPICH, Intel MPI
)


def _launcher() -> tuple[str, str, str, str] | None:
    for names in _LAUNCHER_VARIABLES:
        if names[0] in os.environ:
            return names
    return None


def _daemon_vpid(variable: str) -> int | None:
    """The daemon number in an Open MPI 4 (ORTE) URI: ``<jobid>.<vpid>;tcp://...``."""
    name = os.environ.get(variable, "").partition(";")[0]
    return parse_count(name.rpartition(".")[2]) if "." in name else None


def _daemon_count() -> int | None:
    """How many daemons mpirun started: the ``@<vpid>(<count>)`` groups of ORTE's node regex."""
    regex = os.environ.get("OMPI_MCA_orte_node_regex", "")  # noqa: SIM112 (Open MPI's spelling)
    counts = re.findall(r"(?:^|,)\d+\((\d+)\)", regex.rpartition("@")[2]) if "@" in regex else []
    parsed = [parse_count(c) for c in counts]
    if not parsed or None in parsed:  # none, or a count no machine room holds
        return None
    return sum(c for c in parsed if c is not None)


def _mpirun_address(uri: str) -> str | None:
    """mpirun's address in ORTE's ``<job>.<vpid>;tcp://a,b:port;tcp6://[x],[y]:port``.

    Each transport lists its interfaces, comma-separated, before one port; an
    IPv6 address is in brackets. The first IPv4 address wins (a link-local IPv6
    one needs a scope to be reached), else the first IPv6 one.
    """
    found: dict[str, str] = {}
    for part in uri.split(";")[1:]:
        match = re.fullmatch(r"(tcp6?)://(.+):\d{1,5}", part.strip())
        if match is None or match[1] in found:
            continue
        host = match[2].split(",")[0]
        if match[1] == "tcp6":
            if not (host.startswith("[") and host.endswith("]")):
                continue
            host = host[1:-1]
        try:
            ipaddress.ip_address(host)
        except ValueError:
            continue
        found[match[1]] = host
    return found.get("tcp") or found.get("tcp6")


def _open_mpi_node() -> tuple[int, str | None] | None:
    """This node's index, and rank 0's address where known, from Open MPI 4's variables.

    mpirun is daemon 0 and starts one daemon per further node (``orte_local_daemon_uri``
    names this node's); ranks fill the nodes in daemon order. ``orte_num_nodes``
    counts the nodes that run ranks: one fewer than the daemons when mpirun's own
    node (a login node) runs none, and then the nodes count from daemon 1. mpirun's
    node, when it runs ranks, holds rank 0, and ``orte_hnp_uri`` gives its address.
    None when the variables do not settle it (another launcher, Open MPI 5).
    """
    vpid = _daemon_vpid("OMPI_MCA_orte_local_daemon_uri")
    nodes = parse_count(os.environ.get("OMPI_MCA_orte_num_nodes", ""))  # noqa: SIM112 (Open MPI's spelling)
    if vpid is None or nodes is None:
        return None
    mpirun_address = _mpirun_address(os.environ.get("OMPI_MCA_orte_hnp_uri", ""))  # noqa: SIM112 (Open MPI's spelling)
    if vpid == 0:
        return 0, mpirun_address  # this node runs mpirun and ranks: the first node
    daemons = _daemon_count()
    if daemons == nodes:
        return vpid, mpirun_address
    if daemons == nodes + 1:
        return vpid - 1, None  # mpirun's node runs no rank; rank 0's host is not named
    return None


class MPIEnvironment(ClusterEnvironment):
    """Ranks from MPI itself (mpi4py) or, without mpi4py, from the launcher's variables.

    With mpi4py (``use_mpi4py=None`` picks it when installed) it behaves as
    Lightning's: ranks from ``COMM_WORLD``, node rank from the sorted distinct host
    names, main address and a free port broadcast from rank 0. Without it, the
    variables of Open MPI (``OMPI_COMM_WORLD_*``), MVAPICH (``MV2_COMM_WORLD_*``)
    or MPICH / Intel MPI (``PMI_*``, ``MPI_LOCALRANKID``) give the ranks; on one
    node the main address is 127.0.0.1, and the port is ``MASTER_PORT`` or derived
    from the job's PMIx namespace, the same in every rank. Across nodes, Open MPI
    4's daemon variables give the node rank (nodes in mpirun's launch order) and,
    when mpirun's node runs rank 0, the main address; other launchers need mpi4py
    or ``MASTER_ADDR`` there.
    Detection reads the variables only: it never initialises MPI.
    """

    def __init__(self, use_mpi4py: bool | None = None) -> None:
        if use_mpi4py is None:
            use_mpi4py = importlib.util.find_spec("mpi4py") is not None
        self.use_mpi4py = use_mpi4py
        self._comm_world: Any = None
        self._comm_local: Any = None
        self._node_rank: int | None = None
        self._main_address: str | None = None
        self._main_port: int | None = None
        if use_mpi4py:
            from mpi4py import MPI

            self._comm_world = MPI.COMM_WORLD
        elif _launcher() is None:
            raise ClusterEnvironmentError(
                "no MPI launcher variables (OMPI_COMM_WORLD_*, PMI_*, MV2_COMM_WORLD_*) and "
                "mpi4py is not installed; start the processes with mpirun, or "
                "pip install mpi4py",
                reason="missing-variable",
            )

    @property
    def creates_processes_externally(self) -> bool:
        return True

    def _names(self) -> tuple[str, str, str, str]:
        names = _launcher()
        if names is None:
            raise ClusterEnvironmentError(
                f"no MPI launcher variables found; {_WHO}", reason="missing-variable"
            )
        return names

    def _single_node(self) -> bool:
        size, _, _, local_size = self._names()
        return os.environ.get(local_size) == os.environ.get(size)

    @property
    def main_address(self) -> str:
        if self._main_address is None:
            if self.use_mpi4py:
                self._main_address = self._comm_world.bcast(socket.gethostname(), root=0)
            elif "MASTER_ADDR" in os.environ:
                self._main_address = os.environ["MASTER_ADDR"]
            elif self._single_node():
                self._main_address = "127.0.0.1"
            elif (node := _open_mpi_node()) is not None and node[1] is not None:
                self._main_address = node[1]
            else:
                raise ClusterEnvironmentError(
                    "the MPI job spans several nodes and rank 0's host is unknown without "
                    "mpi4py; pip install mpi4py, or export MASTER_ADDR (mpirun -x MASTER_ADDR)",
                    reason="missing-variable",
                )
        return self._main_address

    @property
    def main_port(self) -> int:
        if self._main_port is None:
            if "MASTER_PORT" in os.environ:
                self._main_port = get_int("MASTER_PORT", "set it to a free port, or unset it")
            elif self.use_mpi4py:
                self._main_port = self._comm_world.bcast(find_free_network_port(), root=0)
            elif "PMIX_NAMESPACE" in os.environ:
                digest = zlib.crc32(os.environ["PMIX_NAMESPACE"].encode("utf-8", "surrogateescape"))
                self._main_port = 20000 + digest % 20000
            else:
                raise ClusterEnvironmentError(
                    "no port agreed between the MPI ranks: without mpi4py, export MASTER_PORT "
                    "(mpirun -x MASTER_PORT=29500), or pip install mpi4py",
                    reason="missing-variable",
                )
        return self._main_port

    @staticmethod
    def detect() -> bool:
        names = _launcher()
        if names is None:
            return False
        size = parse_count(os.environ.get(names[0], ""))
        return size is not None and size > 1

    def world_size(self) -> int:
        if self.use_mpi4py:
            size: int = self._comm_world.Get_size()
            return size
        return get_int(self._names()[0], _WHO)

    def set_world_size(self, size: int) -> None:
        pass  # fixed by MPI

    def global_rank(self) -> int:
        if self.use_mpi4py:
            rank: int = self._comm_world.Get_rank()
            return rank
        return get_int(self._names()[1], _WHO)

    def set_global_rank(self, rank: int) -> None:
        pass  # fixed by MPI

    def _init_comm_local(self) -> None:
        hostname = socket.gethostname()
        everyone = self._comm_world.gather(hostname, root=0)
        unique = sorted(set(everyone)) if everyone is not None else []
        unique = self._comm_world.bcast(unique, root=0)
        self._node_rank = unique.index(hostname)
        self._comm_local = self._comm_world.Split(color=self._node_rank)

    def local_rank(self) -> int:
        if self.use_mpi4py:
            if self._comm_local is None:
                self._init_comm_local()
            rank: int = self._comm_local.Get_rank()
            return rank
        return get_int(self._names()[2], _WHO)

    def node_rank(self) -> int:
        if self.use_mpi4py:
            if self._node_rank is None:
                self._init_comm_local()
            assert self._node_rank is not None
            return self._node_rank
        if self._single_node():
            return 0
        node = _open_mpi_node()
        if node is not None:
            return node[0]
        raise ClusterEnvironmentError(
            "this MPI launcher sets no node rank and the job spans several nodes; "
            "pip install mpi4py",
            reason="missing-variable",
        )
