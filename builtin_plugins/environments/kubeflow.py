"""KubeflowEnvironment: one process per pod of a Kubeflow PyTorchJob."""

from __future__ import annotations

from builtin_plugins.environments.variables import get, get_int
from plugin_registry.kinds.cluster_environment import ClusterEnvironment

_WHO = "is this process a replica of a Kubeflow PyTorchJob (the operator sets it)?"


class KubeflowEnvironment(ClusterEnvironment):
    """MASTER_ADDR, MASTER_PORT, WORLD_SIZE and RANK, set by the PyTorchJob operator.

    Each pod runs one process, so the local rank is 0 and the node rank is the
    global rank. Never detected automatically (a pod cannot tell a PyTorchJob
    from another job that sets the same variables): name it, ``"kubeflow"``.
    Where Lightning's ``detect()`` raises, this one returns False.
    """

    auto_detect = False

    @property
    def creates_processes_externally(self) -> bool:
        return True

    @property
    def main_address(self) -> str:
        return get("MASTER_ADDR", _WHO)

    @property
    def main_port(self) -> int:
        return get_int("MASTER_PORT", _WHO)

    @staticmethod
    def detect() -> bool:
        return False

    def world_size(self) -> int:
        return get_int("WORLD_SIZE", _WHO)

    def set_world_size(self, size: int) -> None:
        pass  # fixed by the operator

    def global_rank(self) -> int:
        return get_int("RANK", _WHO)

    def set_global_rank(self, rank: int) -> None:
        pass  # fixed by the operator

    def local_rank(self) -> int:
        return 0

    def node_rank(self) -> int:
        return self.global_rank()
