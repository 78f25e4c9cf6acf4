"""TorchElasticEnvironment: processes started by ``torchrun`` (torch.distributed.elastic)."""

from __future__ import annotations

import os

from builtin_plugins.environments.variables import get_int
from plugin_registry.errors import ClusterEnvironmentError
from plugin_registry.kinds.cluster_environment import ClusterEnvironment

_WHO = "is this process started by torchrun?"


class TorchElasticEnvironment(ClusterEnvironment):
    """Ranks from RANK / WORLD_SIZE / LOCAL_RANK / GROUP_RANK, set by torchrun per worker.

    Detected by ``TORCHELASTIC_RUN_ID``, as ``torch.distributed.is_torchelastic_launched``
    does, without importing torch. Missing ``MASTER_ADDR`` / ``MASTER_PORT`` default to
    127.0.0.1 and 12910 (as Lightning), without writing them to ``os.environ``.
    """

    @property
    def creates_processes_externally(self) -> bool:
        return True

    @property
    def main_address(self) -> str:
        return os.environ.get("MASTER_ADDR", "127.0.0.1")

    @property
    def main_port(self) -> int:
        return get_int("MASTER_PORT", _WHO, default=12910)

    @staticmethod
    def detect() -> bool:
        return os.environ.get("TORCHELASTIC_RUN_ID") is not None

    def world_size(self) -> int:
        return get_int("WORLD_SIZE", _WHO)

    def set_world_size(self, size: int) -> None:
        pass  # fixed by torchrun

    def global_rank(self) -> int:
        return get_int("RANK", _WHO)

    def set_global_rank(self, rank: int) -> None:
        pass  # fixed by torchrun

    def local_rank(self) -> int:
        return get_int("LOCAL_RANK", _WHO)

    def node_rank(self) -> int:
        return get_int("GROUP_RANK", _WHO, default=0)

    def validate_settings(self, num_devices: int, num_nodes: int) -> None:
        if num_devices * num_nodes != self.world_size():
            raise ClusterEnvironmentError(
                f"You set devices={num_devices} and num_nodes={num_nodes}, but their product "
                f"({num_devices} * {num_nodes}) does not match the world size "
                f"({self.world_size()}, WORLD_SIZE set by torchrun).",
                reason="settings-mismatch",
            )
