"""SGEEnvironment: Sun / Open / Son of Grid Engine parallel-environment jobs (``qsub -pe``)."""

from __future__ import annotations

import contextlib
import os
import socket

from builtin_plugins.environments.variables import (
    get,
    get_int,
    parse_count,
    port_from_job_id,
    read_host_file,
)
from plugin_registry.errors import ClusterEnvironmentError
from plugin_registry.kinds.cluster_environment import ClusterEnvironment

_WHO = "is this process part of a Grid Engine job submitted with qsub -pe?"


def _short(host: str) -> str:
    return host.split(".", 1)[0]


def _names_of_this_host() -> list[str]:
    """This host as Grid Engine may spell it: its name, its resolved name, ``HOSTNAME``.

    Grid Engine writes hosts as it resolves them (``host_aliases`` may map them),
    and sets HOSTNAME in the job to that spelling.
    """
    names = [socket.gethostname(), os.environ.get("HOSTNAME", "")]
    with contextlib.suppress(OSError):
        names.append(socket.getfqdn())
    return [_short(n) for n in dict.fromkeys(names) if n]


class SGEEnvironment(ClusterEnvironment):
    """Hosts and slots from PE_HOSTFILE; JOB_ID, NSLOTS and NHOSTS from Grid Engine.

    Grid Engine starts the job script once per job (on the master host); the
    trainer starts one process per slot on each host, as with the default
    environment, so :attr:`creates_processes_externally` is True only once
    ``LOCAL_RANK`` is set for those processes. The world size is ``NSLOTS``, the
    node rank this host's line in ``PE_HOSTFILE``, the main address its first
    host (or ``MASTER_ADDR``), and the main port ``MASTER_PORT`` or 15000 plus the
    last four digits of ``JOB_ID``.
    """

    def __init__(self) -> None:
        self._global_rank: int | None = None
        self._world_size: int | None = None

    @property
    def creates_processes_externally(self) -> bool:
        return "LOCAL_RANK" in os.environ

    def slots(self) -> list[tuple[str, int]]:
        """``(host, slots)`` per line of ``PE_HOSTFILE``, in order."""
        lines = [line.split() for line in read_host_file("PE_HOSTFILE", _WHO)]
        path = os.environ["PE_HOSTFILE"]
        out = []
        for fields in lines:
            slots = parse_count(fields[1]) if len(fields) >= 2 else None
            if slots is None or slots < 1:
                raise ClusterEnvironmentError(
                    f"PE_HOSTFILE={path!r} has a line {' '.join(fields)[:80]!r}; expected "
                    "'host slots queue processors' with at least one slot",
                    reason="invalid-variable",
                )
            out.append((fields[0], slots))
        return out

    @property
    def hosts(self) -> list[str]:
        return [host for host, _ in self.slots()]

    @property
    def main_address(self) -> str:
        return os.environ.get("MASTER_ADDR") or self.hosts[0]

    @property
    def main_port(self) -> int:
        job_id = "" if "MASTER_PORT" in os.environ else get("JOB_ID", _WHO)
        return port_from_job_id(job_id, "JOB_ID", _WHO)

    @staticmethod
    def detect() -> bool:
        return all(name in os.environ for name in ("JOB_ID", "PE_HOSTFILE", "NSLOTS"))

    def world_size(self) -> int:
        if self._world_size is not None:
            return self._world_size
        return get_int("NSLOTS", _WHO)

    def set_world_size(self, size: int) -> None:
        self._world_size = size

    def node_rank(self) -> int:
        hosts = [_short(h) for h in self.hosts]
        mine = _names_of_this_host()
        for name in mine:
            if name in hosts:
                return hosts.index(name)
        raise ClusterEnvironmentError(
            f"this host ({' / '.join(mine)}) is not in PE_HOSTFILE="
            f"{os.environ.get('PE_HOSTFILE')!r} (hosts: {', '.join(hosts)})",
            reason="invalid-variable",
        )

    def local_rank(self) -> int:
        return get_int("LOCAL_RANK", "set by the process that starts each slot", default=0)

    def global_rank(self) -> int:
        if self._global_rank is not None:
            return self._global_rank
        before = sum(slots for _, slots in self.slots()[: self.node_rank()])
        return before + self.local_rank()

    def set_global_rank(self, rank: int) -> None:
        self._global_rank = rank

    def validate_settings(self, num_devices: int, num_nodes: int) -> None:
        nhosts = get_int("NHOSTS", _WHO, default=len(self.slots()))
        if nhosts != num_nodes:
            raise ClusterEnvironmentError(
                f"You set num_nodes={num_nodes}, but Grid Engine gave the job NHOSTS={nhosts} "
                f"host(s). Set num_nodes={nhosts}.",
                reason="settings-mismatch",
            )
        here = self.slots()[self.node_rank()][1]
        if here != num_devices:
            raise ClusterEnvironmentError(
                f"You set devices={num_devices}, but this host has {here} slot(s) in "
                f"PE_HOSTFILE. Set devices={here}, or ask qsub -pe for {num_devices} per host.",
                reason="settings-mismatch",
            )
