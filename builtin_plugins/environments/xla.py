"""XLAEnvironment: ranks from the torch_xla (PJRT) runtime."""

from __future__ import annotations

import functools
import importlib.util
import os

from plugin_registry.kinds.cluster_environment import ClusterEnvironment


class XLAEnvironment(ClusterEnvironment):
    """World size and ordinals from ``torch_xla.runtime``, as Lightning's.

    The XLA runtime starts its own processes (``creates_processes_externally`` is
    False) and does its own rendezvous, so there is no main address or port.
    Detected when ``PJRT_DEVICE`` names a device and torch_xla is installed,
    without importing it.
    """

    @property
    def creates_processes_externally(self) -> bool:
        return False

    @property
    def main_address(self) -> str:
        raise NotImplementedError("the XLA runtime does its own rendezvous: no main address")

    @property
    def main_port(self) -> int:
        raise NotImplementedError("the XLA runtime does its own rendezvous: no main port")

    @staticmethod
    def detect() -> bool:
        return bool(os.environ.get("PJRT_DEVICE")) and (
            importlib.util.find_spec("torch_xla") is not None
        )

    @functools.lru_cache(maxsize=1)  # noqa: B019 - one runtime per process
    def world_size(self) -> int:
        from torch_xla import runtime as xr

        size: int = xr.world_size()
        return size

    def set_world_size(self, size: int) -> None:
        pass  # fixed by the runtime

    @functools.lru_cache(maxsize=1)  # noqa: B019 - one runtime per process
    def global_rank(self) -> int:
        from torch_xla import runtime as xr

        rank: int = xr.global_ordinal()
        return rank

    def set_global_rank(self, rank: int) -> None:
        pass  # fixed by the runtime

    @functools.lru_cache(maxsize=1)  # noqa: B019 - one runtime per process
    def local_rank(self) -> int:
        from torch_xla import runtime as xr

        rank: int = xr.local_ordinal()
        return rank

    @functools.lru_cache(maxsize=1)  # noqa: B019 - one runtime per process
    def node_rank(self) -> int:
        from torch_xla import runtime as xr

        rank: int = xr.host_index()
        return rank

    def distributed_env(self) -> dict[str, str]:
        raise NotImplementedError("the XLA runtime does its own rendezvous")
