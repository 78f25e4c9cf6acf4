"""The cluster-environment kind: where this process sits in a distributed job."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar

from plugin_registry.errors import ClusterEnvironmentError as ClusterEnvironmentError


class ClusterEnvironment(ABC):
    """What a launcher (SLURM, torchrun, mpirun, ...) tells a training process.

    The interface of Lightning Fabric's ``ClusterEnvironment``. Implementations
    read the launcher's environment variables (and files they name) and import
    no torch, so detection is cheap.
    """

    def __repr__(self) -> str:
        # The constructor's arguments, so that a log line says which plugin this is.
        from plugin_registry.kinds._repr import plugin_repr

        return plugin_repr(self)

    #: False for an environment that cannot tell its launcher from another
    #: (Kubeflow): the resolver then never picks it unless it is named.
    auto_detect: ClassVar[bool] = True

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

    def distributed_env(self) -> dict[str, str]:
        """The variables ``torch.distributed``'s ``env://`` rendezvous reads."""
        return {
            "MASTER_ADDR": self.main_address,
            "MASTER_PORT": str(self.main_port),
            "WORLD_SIZE": str(self.world_size()),
            "RANK": str(self.global_rank()),
            "LOCAL_RANK": str(self.local_rank()),
        }

    def export_distributed_env(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """Write :meth:`distributed_env` into ``os.environ``; :meth:`teardown` undoes it.

        The one place where an environment plugin changes ``os.environ``: reading
        ranks, addresses and ports never does. Returns what was written.
        """
        values = dict(environ) if environ is not None else self.distributed_env()
        saved = self.__dict__.setdefault("_exported_env", {})
        for key, value in values.items():
            saved.setdefault(key, os.environ.get(key))
            os.environ[key] = value
        return values

    def teardown(self) -> None:
        """Undo whatever the environment changed; called when training ends."""
        saved: dict[str, str | None] = self.__dict__.pop("_exported_env", {})
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
