"""Data-parallel training under torchrun that resumes from its last checkpoint.

    torchrun ... tests/workers/elastic_worker.py ROOT --steps S --every K --timeout T

The group is formed from the ``torchelastic`` environment's answers (gloo, a
collective timeout of T seconds). Each rank takes its slice of a fixed global
batch per step; gradients are averaged with all_reduce. Rank 0 saves
``{"model", "optim", "step"}`` to ``ROOT/last.ckpt`` with the ``torch``
checkpoint IO every K steps; a (re)started worker resumes from it. Rank 0
appends JSON lines to ``ROOT/log.jsonl``: ``{"start", "restart", "world",
"hosts"}`` per start, ``{"step", "loss"}`` per step, ``{"saved"}`` and at the end
``{"done", "weights"}``. :func:`reference` trains the same model in one process.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import sys
import time
from pathlib import Path

import torch

BATCH = 8
FEATURES = 6


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(BATCH, FEATURES, generator=g)
    return x, x.sum(dim=1, keepdim=True) * 0.5 + 0.1


def build() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Linear(FEATURES, 1)
    return model, torch.optim.SGD(model.parameters(), lr=0.05)


def reference(steps: int) -> list[float]:
    """The weights after ``steps`` steps on the whole batch, in one process."""
    model, optim = build()
    for step in range(1, steps + 1):
        x, y = batch(step)
        optim.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optim.step()
    return [float(v) for v in torch.cat([p.detach().reshape(-1) for p in model.parameters()])]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--every", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=20)
    parser.add_argument("--pause", type=float, default=0.3)
    args = parser.parse_args()

    import torch.distributed as dist

    import plugin_registry as pr

    env = pr.load("cluster_environment/torchelastic")
    rank, world = env.global_rank(), env.world_size()
    timeout = datetime.timedelta(seconds=args.timeout)
    url = f"tcp://{env.main_address}:{env.main_port}?rank={rank}&world_size={world}"
    store, _, _ = next(dist.rendezvous(url, timeout=timeout))
    # torchrun's agent keeps one store for every attempt (same MASTER_PORT), and gloo's
    # keys from the attempt before stay in it: a restarted rank 1 read the dead rank 0's
    # address and failed ("Connection refused"). A prefix per attempt keeps them apart.
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    dist.init_process_group(
        "gloo",
        store=dist.PrefixStore(f"attempt-{attempt}", store),
        rank=rank,
        world_size=world,
        timeout=timeout,
    )
    io = pr.load("checkpoint_io/torch")
    ckpt = args.root / "last.ckpt"
    log = args.root / "log.jsonl"

    def say(**fields: object) -> None:
        if rank == 0:
            with open(log, "a") as fh:
                fh.write(json.dumps(fields) + "\n")

    hosts: list[object] = [None] * world
    dist.all_gather_object(hosts, [socket.gethostname(), env.node_rank(), env.local_rank()])
    model, optim = build()
    start = 1
    if ckpt.exists():
        state = io.load_checkpoint(ckpt)
        model.load_state_dict(state["model"])
        optim.load_state_dict(state["optim"])
        start = state["step"] + 1
    say(
        start=start,
        restart=int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")),
        world=world,
        hosts=hosts,
    )
    share = BATCH // world
    for step in range(start, args.steps + 1):
        x, y = batch(step)
        x, y = x[rank * share : (rank + 1) * share], y[rank * share : (rank + 1) * share]
        optim.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        for p in model.parameters():
            assert p.grad is not None
            dist.all_reduce(p.grad)
            p.grad /= world
        optim.step()
        total = loss.detach().clone()
        dist.all_reduce(total)
        say(step=step, loss=total.item() / world)
        if step % args.every == 0:
            if rank == 0:
                io.save_checkpoint(
                    {"model": model.state_dict(), "optim": optim.state_dict(), "step": step}, ckpt
                )
            dist.barrier()
            say(saved=step)
        time.sleep(args.pause)
    weights = [float(v) for v in torch.cat([p.detach().reshape(-1) for p in model.parameters()])]
    say(done=True, weights=weights)
    dist.destroy_process_group()


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # say what failed in one line, then fail as before
        print(f"elastic_worker: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        raise
