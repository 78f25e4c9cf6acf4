"""A Ray Train job across two Ray nodes: one TorchTrainer worker on each.

    RAY_ADDRESS=node1:PORT python tests/workers/ray_nodes_driver.py OUT_DIR

Each node offers one ``node-slot`` resource and each worker asks for one, so Ray
places one worker per node. Every worker writes OUT_DIR/rank-<R>.json: the `ray`
environment's answers beside Ray's own context, its host, the environment
detect_environment() finds, and the sum of an all_reduce over Ray's gloo group.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any


def _worker(config: dict[str, Any]) -> None:
    import ray.train
    import torch
    import torch.distributed as dist

    import plugin_registry as pr

    env = pr.load("ray", kind="cluster_environment")
    ctx = ray.train.get_context()
    value = torch.tensor([float(env.global_rank() + 1)])
    dist.all_reduce(value)  # Ray's group, across the nodes
    out = {
        "host": socket.gethostname(),
        "detected": pr.detect_environment().name,
        "ray": {
            "world_rank": ctx.get_world_rank(),
            "local_rank": ctx.get_local_rank(),
            "node_rank": ctx.get_node_rank(),
            "world_size": ctx.get_world_size(),
        },
        "env": {
            "world_rank": env.global_rank(),
            "local_rank": env.local_rank(),
            "node_rank": env.node_rank(),
            "world_size": env.world_size(),
            "main_address": env.main_address,
            "main_port": env.main_port,
        },
        "all_reduce": float(value),
    }
    Path(config["out"], f"rank-{env.global_rank()}.json").write_text(json.dumps(out))
    ray.train.report({"done": 1})


def main() -> None:
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    out = sys.argv[1]
    ray.init(address=os.environ["RAY_ADDRESS"])
    result = TorchTrainer(
        _worker,
        train_loop_config={"out": out},
        scaling_config=ScalingConfig(
            num_workers=2, use_gpu=False, resources_per_worker={"CPU": 1, "node-slot": 1}
        ),
        run_config=RunConfig(name="nodes", storage_path=os.path.join(out, "ray-results")),
    ).fit()
    if result.error:
        raise SystemExit(f"the Ray Train run failed: {result.error!r}")


if __name__ == "__main__":
    main()
