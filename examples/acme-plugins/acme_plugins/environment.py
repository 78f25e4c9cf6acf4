"""Processes started by the ACME scheduler: each gets ACME_* variables."""

from __future__ import annotations

import os

from plugin_registry.kinds.cluster_environment import ClusterEnvironment, ClusterEnvironmentError

_HINT = "was this process started by the acme scheduler?"


def _int(name: str, default: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None:
        if default is not None:
            return default
        # This reason makes it a KeyError as well, as Lightning's os.environ[...] raises.
        raise ClusterEnvironmentError(f"{name} is not set; {_HINT}", reason="missing-variable")
    if not (value.isascii() and value.isdigit()):
        # This one makes it a ValueError as well, as Lightning's int(...) raises.
        raise ClusterEnvironmentError(
            f"{name}={value!r} is not an integer; {_HINT}", reason="invalid-variable"
        )
    return int(value)


class SchedulerEnvironment(ClusterEnvironment):
    """Ranks and rendezvous from ACME_RANK, ACME_WORLD_SIZE, ACME_MAIN_ADDR, ..."""

    @property
    def creates_processes_externally(self) -> bool:
        return True

    @property
    def main_address(self) -> str:
        return os.environ.get("ACME_MAIN_ADDR", "127.0.0.1")

    @property
    def main_port(self) -> int:
        return _int("ACME_MAIN_PORT", 29500)

    @staticmethod
    def detect() -> bool:
        return "ACME_JOB_ID" in os.environ

    def world_size(self) -> int:
        return _int("ACME_WORLD_SIZE")

    def set_world_size(self, size: int) -> None:
        pass  # fixed by the scheduler

    def global_rank(self) -> int:
        return _int("ACME_RANK")

    def set_global_rank(self, rank: int) -> None:
        pass  # fixed by the scheduler

    def local_rank(self) -> int:
        return _int("ACME_LOCAL_RANK", 0)

    def node_rank(self) -> int:
        return _int("ACME_NODE_RANK", 0)
