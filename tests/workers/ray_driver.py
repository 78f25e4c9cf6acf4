"""Ray Train driver for tests/test_ray.py: two TorchTrainer runs of 2 CPU workers.

    RAY_ADDRESS=127.0.0.1:PORT python tests/workers/ray_driver.py OUT_DIR

Run 1, in each worker: the `ray` environment loaded by name and found by
detect_environment, its answers beside Ray's own context, the resolver's choice,
a hardware record; Ray's process group replaced by a gloo group formed from the
environment's answers, which all_reduces; then 20 steps of the reference model
with the `bf16-mixed` precision plugin, saved with the `torch` checkpoint IO and
reported to Ray. Run 2, started again under the first run's name, resumes from
Ray's checkpoint and checks what it loads.
Each worker writes OUT_DIR/run{1,2}-rank{R}.json; the driver writes OUT_DIR/driver.json.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any


def _first_run(config: dict[str, Any]) -> None:
    import datetime

    import ray
    import ray.train
    import torch
    import torch.distributed as dist

    import plugin_registry as pr
    from plugin_registry.resolver.hardware import detect_hardware
    from plugin_registry.testing.reference_loop import train

    out: dict[str, Any] = {}
    env = pr.load("ray", kind="cluster_environment")
    found = pr.detect_environment()
    ctx = ray.train.get_context()
    out["ray"] = {
        "world_rank": ctx.get_world_rank(),
        "local_rank": ctx.get_local_rank(),
        "node_rank": ctx.get_node_rank(),
        "world_size": ctx.get_world_size(),
    }
    out["env"] = {
        "world_rank": env.global_rank(),
        "local_rank": env.local_rank(),
        "node_rank": env.node_rank(),
        "world_size": env.world_size(),
        "main_address": env.main_address,
        "main_port": env.main_port,
        "creates_processes_externally": env.creates_processes_externally,
    }
    out["detected"] = found.name
    res = pr.resolve()
    out["resolved"] = res.cluster_environment.name
    out["reason"] = res.cluster_environment.reason
    hw = detect_hardware().to_dict()
    out["hardware_libraries"] = hw["libraries"]
    out["ray_version"] = ray.__version__
    out["torch_version"] = torch.__version__
    # The group Ray made goes; one from the environment's answers (address, ranks, world
    # size) takes its place. Ray's store still holds main_port until every rank has let go
    # of it, so the new group meets on a port rank 0 picks and sends over Ray's group.
    box = [_free_port() if env.global_rank() == 0 else 0]
    dist.broadcast_object_list(box, src=0)
    dist.destroy_process_group()
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://{env.main_address}:{box[0]}",
        rank=env.global_rank(),
        world_size=env.world_size(),
        timeout=datetime.timedelta(seconds=60),
    )
    value = torch.tensor([float(env.global_rank() + 1)])
    dist.all_reduce(value)
    out["all_reduce"] = float(value)
    precision = pr.load("bf16-mixed", kind="precision")
    result = train(precision, steps=20)
    io = pr.load("torch", kind="checkpoint_io")
    state = {"model": result.model.state_dict(), "step": 20, "loss": result.losses[-1]}
    out["losses"] = [result.losses[0], result.losses[-1]]
    out["weight_sum"] = float(sum(v.float().sum() for v in state["model"].values()))
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if env.global_rank() == 0:
            io.save_checkpoint(state, os.path.join(tmp, "model.ckpt"))
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        _write(config["out"], f"run1-rank{env.global_rank()}.json", out)
        ray.train.report({"loss": result.losses[-1], "step": 20}, checkpoint=checkpoint)


def _second_run(config: dict[str, Any]) -> None:
    import ray.train

    import plugin_registry as pr

    env = pr.load("ray", kind="cluster_environment")
    checkpoint = ray.train.get_checkpoint()
    out: dict[str, Any] = {"has_checkpoint": checkpoint is not None}
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            state = pr.load("torch").load_checkpoint(os.path.join(directory, "model.ckpt"))
        out["step"] = state["step"]
        out["weight_sum"] = float(sum(v.float().sum() for v in state["model"].values()))
    _write(config["out"], f"run2-rank{env.global_rank()}.json", out)
    ray.train.report({"step": out.get("step", 0)})


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("", 0))
        port: int = s.getsockname()[1]
        return port


def _write(directory: str, name: str, data: dict[str, Any]) -> None:
    Path(directory, name).write_text(json.dumps(data))


def main() -> None:
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    out = sys.argv[1]
    ray.init(address=os.environ["RAY_ADDRESS"])
    scaling = ScalingConfig(num_workers=2, use_gpu=False, resources_per_worker={"CPU": 1})
    storage = os.path.join(out, "ray-results")
    first = TorchTrainer(
        _first_run,
        train_loop_config={"out": out},
        scaling_config=scaling,
        run_config=RunConfig(name="first", storage_path=storage),
    ).fit()
    # Ray Train resumes a run started again under the same name and storage path:
    # ray.train.get_checkpoint() then gives the latest checkpoint it reported.
    second = TorchTrainer(
        _second_run,
        train_loop_config={"out": out},
        scaling_config=scaling,
        run_config=RunConfig(name="first", storage_path=storage),
    ).fit()
    _write(
        out,
        "driver.json",
        {
            "first_error": repr(first.error) if first.error else None,
            "second_error": repr(second.error) if second.error else None,
            "first_checkpoint": first.checkpoint is not None,
            "first_metrics": first.metrics,
        },
    )


if __name__ == "__main__":
    main()
