"""RayEnvironment: the workers of a Ray Train ``TorchTrainer``."""

from __future__ import annotations

import os
import sys
from typing import Any

from builtin_plugins.environments.variables import get_int
from plugin_registry.errors import ClusterEnvironmentError
from plugin_registry.kinds.cluster_environment import ClusterEnvironment

# Set in every process a raylet starts (workers and actors), never in a plain process.
_RAY_WORKER_VARIABLES = ("RAY_RAYLET_PID", "RAY_JOB_ID")
_WHO = "Ray Train sets it in each TorchTrainer worker (TorchConfig(init_method='env'))"


def train_context() -> Any | None:
    """Ray Train's context in a training worker; None anywhere else.

    Never imports ray unless it is imported already or Ray's worker variables say
    this process was started by Ray: detection stays cheap everywhere else.
    """
    if "ray" not in sys.modules and not any(v in os.environ for v in _RAY_WORKER_VARIABLES):
        return None
    try:
        import ray.train

        context = ray.train.get_context()
        context.get_world_size()  # outside a worker this raises (Ray Train v2) or fails (v1)
    except Exception:  # noqa: BLE001 - any failure means: not a Ray Train worker
        return None
    return context


class RayEnvironment(ClusterEnvironment):
    """Ranks from Ray Train's context (``ray.train.get_context()``) in TorchTrainer workers.

    Ray starts the worker processes (``creates_processes_externally``); their world
    rank, local rank, node rank and world size are Ray's, the main address and
    port those Ray gives torch (``MASTER_ADDR`` / ``MASTER_PORT``). Detected only
    inside a training worker. It ranks above torchrun's and the schedulers'
    environments: Ray on a SLURM allocation keeps SLURM's variables in its workers,
    and Ray sets ``RANK``/``LOCAL_RANK``, but Ray decides the ranks.
    """

    @staticmethod
    def detect() -> bool:
        return train_context() is not None

    @staticmethod
    def _context() -> Any:
        context = train_context()
        if context is None:
            where = (
                "ray is not installed or not imported here"
                if "ray" not in sys.modules
                else "ray.train.get_context() says this is not a training worker"
            )
            raise ClusterEnvironmentError(
                f"the 'ray' environment works inside a Ray Train worker only ({where}); "
                "start training with ray.train.torch.TorchTrainer, or choose another "
                "environment"
            )
        return context

    @property
    def creates_processes_externally(self) -> bool:
        return True

    @property
    def main_address(self) -> str:
        address = os.environ.get("MASTER_ADDR")
        if not address:
            raise ClusterEnvironmentError(
                f"MASTER_ADDR is not set in this Ray Train worker: {_WHO}; "
                "TorchConfig(init_method='tcp') keeps the address to itself"
            )
        return address

    @property
    def main_port(self) -> int:
        return get_int("MASTER_PORT", _WHO)

    def world_size(self) -> int:
        size: int = self._context().get_world_size()
        return size

    def set_world_size(self, size: int) -> None:
        pass  # fixed by Ray's ScalingConfig(num_workers=...)

    def global_rank(self) -> int:
        rank: int = self._context().get_world_rank()
        return rank

    def set_global_rank(self, rank: int) -> None:
        pass  # fixed by Ray

    def local_rank(self) -> int:
        rank: int = self._context().get_local_rank()
        return rank

    def node_rank(self) -> int:
        rank: int = self._context().get_node_rank()
        return rank

    def validate_settings(self, num_devices: int, num_nodes: int) -> None:
        # As Ray's own RayLightningEnvironment: the trainer's devices/num_nodes stay
        # "auto" under Ray, which sizes the job with ScalingConfig instead.
        pass
