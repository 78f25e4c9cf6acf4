"""LSFEnvironment: processes started by ``jsrun`` under the LSF scheduler."""

from __future__ import annotations

import os
import socket

from builtin_plugins.environments.variables import get_int, read_host_file
from plugin_registry.errors import ClusterEnvironmentError
from plugin_registry.kinds.cluster_environment import ClusterEnvironment

_WHO = "is this process started by jsrun inside an LSF job?"
_REQUIRED = ("LSB_JOBID", "LSB_DJOB_RANKFILE", "JSM_NAMESPACE_LOCAL_RANK", "JSM_NAMESPACE_SIZE")


class LSFEnvironment(ClusterEnvironment):
    """Ranks from JSM_NAMESPACE_*; hosts from the rank file in LSB_DJOB_RANKFILE.

    The rank file lists one host per task, the job's launch node first; the launch
    node runs no task, so it is skipped. The main address is the first compute
    host, the node rank this host's position among the distinct compute hosts,
    and the main port ``MASTER_PORT`` or 10000 plus the job id modulo 1000.

    As Lightning's, it reads the rank file, the port and this host's node rank when
    it is built, so a job started outside ``jsrun`` fails at once; as Lightning's, a
    variable that is not set is a ValueError (reason "invalid-variable"), here and in
    ``world_size``, ``global_rank`` and ``local_rank``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._main_address = self._read_hosts()[0]
        self._main_port = self._port()
        self._node_rank = self._find_node_rank()

    @property
    def creates_processes_externally(self) -> bool:
        return True

    @staticmethod
    def _read_hosts() -> list[str]:
        if "LSB_DJOB_RANKFILE" not in os.environ:
            # A ValueError (not a KeyError) here, as Lightning's LSF check raises.
            raise ClusterEnvironmentError(
                f"LSB_DJOB_RANKFILE is not set; {_WHO}", reason="invalid-variable"
            )
        lines = read_host_file("LSB_DJOB_RANKFILE", _WHO, "the LSF rank file")
        path = os.environ["LSB_DJOB_RANKFILE"]
        if len(lines) < 2:
            raise ClusterEnvironmentError(
                f"the LSF rank file {path!r} lists {len(lines)} host(s); expected the launch "
                "node followed by one line per task",
                reason="invalid-variable",
            )
        return lines[1:]

    @property
    def hosts(self) -> list[str]:
        """The distinct compute hosts, in rank-file order."""
        return list(dict.fromkeys(self._read_hosts()))

    @property
    def main_address(self) -> str:
        return self._main_address

    @property
    def main_port(self) -> int:
        return self._main_port

    @staticmethod
    def _port() -> int:
        if "MASTER_PORT" in os.environ:
            return get_int("MASTER_PORT", "set it to a free port, or unset it")
        return get_int("LSB_JOBID", _WHO, missing="invalid-variable") % 1000 + 10000

    @staticmethod
    def detect() -> bool:
        return all(name in os.environ for name in _REQUIRED)

    def world_size(self) -> int:
        return get_int("JSM_NAMESPACE_SIZE", _WHO, missing="invalid-variable")

    def set_world_size(self, size: int) -> None:
        pass  # fixed by jsrun

    def global_rank(self) -> int:
        return get_int("JSM_NAMESPACE_RANK", _WHO, missing="invalid-variable")

    def set_global_rank(self, rank: int) -> None:
        pass  # fixed by jsrun

    def local_rank(self) -> int:
        return get_int("JSM_NAMESPACE_LOCAL_RANK", _WHO, missing="invalid-variable")

    def node_rank(self) -> int:
        return self._node_rank

    def _find_node_rank(self) -> int:
        hosts = self.hosts
        me = socket.gethostname()
        if me not in hosts:
            raise ClusterEnvironmentError(
                f"this host {me!r} is not in the LSF rank file "
                f"{os.environ.get('LSB_DJOB_RANKFILE')!r} (compute hosts: {', '.join(hosts)})",
                reason="invalid-variable",
            )
        return hosts.index(me)
