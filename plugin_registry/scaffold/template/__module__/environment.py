"""Processes started by a launcher that sets ${PREFIX}_* variables."""

from __future__ import annotations

import os

from plugin_registry.kinds.cluster_environment import ClusterEnvironment


def _int(name: str, default: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None:
        if default is None:
            raise RuntimeError(f"{name} is not set: was this process started by the launcher?")
        return default
    return int(value)


class Environment(ClusterEnvironment):
    @property
    def creates_processes_externally(self) -> bool:
        return True

    @property
    def main_address(self) -> str:
        return os.environ.get("${PREFIX}_MAIN_ADDR", "127.0.0.1")

    @property
    def main_port(self) -> int:
        return _int("${PREFIX}_MAIN_PORT", 29500)

    @staticmethod
    def detect() -> bool:
        return "${PREFIX}_WORLD_SIZE" in os.environ

    def world_size(self) -> int:
        return _int("${PREFIX}_WORLD_SIZE")

    def set_world_size(self, size: int) -> None:
        pass  # fixed by the launcher

    def global_rank(self) -> int:
        return _int("${PREFIX}_RANK")

    def set_global_rank(self, rank: int) -> None:
        pass  # fixed by the launcher

    def local_rank(self) -> int:
        return _int("${PREFIX}_LOCAL_RANK", 0)

    def node_rank(self) -> int:
        return _int("${PREFIX}_NODE_RANK", 0)
