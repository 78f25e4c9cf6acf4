"""LightningEnvironment: the default, for one machine or a cluster nobody manages."""

from __future__ import annotations

import os
import socket

from builtin_plugins.environments.variables import get_int
from plugin_registry.kinds.cluster_environment import ClusterEnvironment

_WHO = "set it to the value your launcher assigns, or unset it"


def find_free_network_port() -> int:
    """``STANDALONE_PORT`` if set, else a port the OS reports free on this host."""
    if "STANDALONE_PORT" in os.environ:
        return get_int("STANDALONE_PORT", _WHO)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        port: int = s.getsockname()[1]
    return port


class LightningEnvironment(ClusterEnvironment):
    """Processes started by the trainer, or by hand with ``LOCAL_RANK`` and friends set.

    Without ``LOCAL_RANK`` the trainer spawns the processes and calls
    :meth:`set_global_rank` / :meth:`set_world_size`; the main address and port
    come from ``MASTER_ADDR`` / ``MASTER_PORT`` or default to 127.0.0.1 and a
    free port (chosen once per instance).
    """

    def __init__(self) -> None:
        self._main_port = -1
        self._global_rank = 0
        self._world_size = 1

    @property
    def creates_processes_externally(self) -> bool:
        return "LOCAL_RANK" in os.environ

    @property
    def main_address(self) -> str:
        return os.environ.get("MASTER_ADDR", "127.0.0.1")

    @property
    def main_port(self) -> int:
        if self._main_port == -1:
            self._main_port = (
                get_int("MASTER_PORT", _WHO)
                if "MASTER_PORT" in os.environ
                else find_free_network_port()
            )
        return self._main_port

    @staticmethod
    def detect() -> bool:
        return True

    def world_size(self) -> int:
        return self._world_size

    def set_world_size(self, size: int) -> None:
        self._world_size = size

    def global_rank(self) -> int:
        return self._global_rank

    def set_global_rank(self, rank: int) -> None:
        self._global_rank = rank

    def local_rank(self) -> int:
        return get_int("LOCAL_RANK", _WHO, default=0)

    def node_rank(self) -> int:
        if "NODE_RANK" in os.environ:
            return get_int("NODE_RANK", _WHO)
        return get_int("GROUP_RANK", _WHO, default=0)
