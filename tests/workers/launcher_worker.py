"""One training process under a real launcher: detect, form a gloo group, all_reduce.

    python tests/workers/launcher_worker.py OUT_DIR [ENV_NAME [JSON_KWARGS]]

Without ENV_NAME the environment is detected. Writes OUT_DIR/rank-<rank>.json.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from datetime import timedelta
from typing import Any

import plugin_registry as pr


def main() -> None:
    out = sys.argv[1]
    detected = pr.detect_environment().name
    name = sys.argv[2] if len(sys.argv) > 2 else detected
    kwargs = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    env = pr.load(f"cluster_environment/{name}", **kwargs)
    answers = {
        "detected": detected,
        "used": name,
        "world_size": env.world_size(),
        "global_rank": env.global_rank(),
        "local_rank": env.local_rank(),
        "node_rank": env.node_rank(),
        "main_address": env.main_address,
        "main_port": env.main_port,
        "creates_processes_externally": env.creates_processes_externally,
        "torch_imported_by_detection": "torch" in sys.modules,
        "host": socket.gethostname(),
        "nodelist": os.environ.get("SLURM_NODELIST"),
    }
    answers["main_address_resolves_to"] = socket.gethostbyname(env.main_address)
    import torch
    import torch.distributed as dist

    form_group(env)
    value = torch.tensor([float(env.global_rank() + 1)])
    dist.all_reduce(value)
    answers["all_reduce_sum"] = value.item()
    answers["dist_rank"] = dist.get_rank()
    answers["dist_world_size"] = dist.get_world_size()
    if name == "mpi" and kwargs.get("use_mpi4py", True):
        answers["lightning"] = lightning_mpi_answers()
    dist.destroy_process_group()
    with open(os.path.join(out, f"rank-{answers['global_rank']}.json"), "w") as fh:
        json.dump(answers, fh)


def form_group(env: Any) -> None:
    """A gloo group from the environment's answers alone: address, port, rank, size."""
    import torch.distributed as dist

    dist.init_process_group(
        "gloo",
        init_method=f"tcp://{env.main_address}:{env.main_port}",
        rank=env.global_rank(),
        world_size=env.world_size(),
        timeout=timedelta(seconds=90),
    )


def lightning_mpi_answers() -> dict[str, object] | None:
    """What Lightning's MPIEnvironment says in this same process, where installed."""
    try:
        from lightning.fabric.plugins.environments import MPIEnvironment
    except ImportError:
        return None
    env = MPIEnvironment()
    return {
        "world_size": env.world_size(),
        "global_rank": env.global_rank(),
        "local_rank": env.local_rank(),
        "node_rank": env.node_rank(),
        "main_address": env.main_address,
    }


if __name__ == "__main__":
    main()
