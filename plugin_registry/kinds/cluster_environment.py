"""The cluster-environment kind: where this process sits in a distributed job."""

from __future__ import annotations

from abc import ABC, abstractmethod


class ClusterEnvironment(ABC):
    """What a launcher (SLURM, torchrun, mpirun, ...) tells a training process.

    The interface of Lightning Fabric's ``ClusterEnvironment``. Implementations
    read the launcher's environment variables (and files they name) and import
    no torch, so detection is cheap.
    """

    @property
    @abstractmethod
    def creates_processes_externally(self) -> bool:
        """True when the launcher starts every process; False when the trainer must."""

    @property
    @abstractmethod
    def main_address(self) -> str:
        """The host of rank 0, where the process group rendezvous."""

    @property
    @abstractmethod
    def main_port(self) -> int:
        """The rendezvous port on :attr:`main_address`."""

    @staticmethod
    @abstractmethod
    def detect() -> bool:
        """Whether this process runs under this environment's launcher."""

    @abstractmethod
    def world_size(self) -> int:
        """The number of processes in the job."""

    @abstractmethod
    def set_world_size(self, size: int) -> None:
        """Record the world size where the launcher does not fix it."""

    @abstractmethod
    def global_rank(self) -> int:
        """This process's rank among all processes."""

    @abstractmethod
    def set_global_rank(self, rank: int) -> None:
        """Record the global rank where the launcher does not fix it."""

    @abstractmethod
    def local_rank(self) -> int:
        """This process's rank on its node."""

    @abstractmethod
    def node_rank(self) -> int:
        """The rank of this process's node."""

    def validate_settings(self, num_devices: int, num_nodes: int) -> None:
        """Raise if the trainer's devices and nodes contradict the launcher's."""

    def teardown(self) -> None:
        """Undo whatever the environment changed; called when training ends."""
