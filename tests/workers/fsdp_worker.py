"""Real FSDP on the CPU: 2 processes, gloo, the reference loop driven by FSDPPrecision.

    python tests/workers/fsdp_worker.py OUT.json

Rank 0 writes, per precision value, the losses, the dtypes seen and whether the
parameters were really sharded (each rank holds half of the flat parameter).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

VALUES = ("32-true", "bf16-true", "16-mixed", "bf16-mixed")


def worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    import plugin_registry as pr
    from plugin_registry.testing.reference_loop import train

    results: dict[str, Any] = {}
    for value in VALUES:
        plugin = pr.load(f"fsdp-{value}", device="cpu")
        wrapped: list[Any] = []

        def wrap(module: Any, plugin: Any = plugin, wrapped: list[Any] = wrapped) -> Any:
            wrapped.append(sum(p.numel() for p in module.parameters()))
            return FSDP(
                module,
                mixed_precision=plugin.mixed_precision_config,
                device_id=torch.device("cpu"),
            )

        result = train(plugin, steps=150, wrap=wrap)
        # Without use_orig_params, parameters() is this rank's shard of the flat parameter.
        local = sum(p.numel() for p in result.model.parameters())
        total = wrapped[0]
        results[value] = {
            "losses": result.losses,
            "dtypes": result.dtypes,
            "world_size": dist.get_world_size(),
            "sharded": 0 < local < total,
        }
    if rank == 0:
        with open(out, "w") as fh:
            json.dump(results, fh)
    dist.destroy_process_group()


def main() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(2, port, sys.argv[1]), nprocs=2)


if __name__ == "__main__":
    main()
