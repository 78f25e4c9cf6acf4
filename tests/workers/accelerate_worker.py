"""One process of an Accelerate job started by a launcher, without ``accelerate launch``.

    python tests/workers/accelerate_worker.py OUT_DIR [ENV_NAME]

``plugin_registry.accelerate.Accelerator`` forms Accelerate's distributed state from
the environment plugin (ENV_NAME, or the detected one), all-reduces, then trains a
small model with DDP through ``prepare`` on a global batch of 8 split across the
processes. Writes OUT_DIR/rank-<rank>.json; run alone, it is the one-process
reference of the same global batch.

It leaves with ``os._exit`` once its report is written: torch 2.13's gloo runloop
thread can free a finished collective's work while the interpreter finalizes, and
then aborts a run that succeeded ("terminate called without an active exception",
about one run in 30 under load; docs/accelerate.md, "What does not fit").
"""

from __future__ import annotations

import json
import os
import sys

import torch

from plugin_registry.accelerate import Accelerator

GLOBAL_BATCH = 8
STEPS = 6


def main() -> None:
    out = sys.argv[1]
    plugins = sys.argv[2:3]
    accelerator = Accelerator(plugins=plugins)
    env = accelerator.cluster_environment
    value = torch.tensor([float(accelerator.process_index + 1)])
    total = accelerator.reduce(value, reduction="sum")
    answers = {
        "environment": type(env).__name__,
        "env_world_size": env.world_size(),
        "env_global_rank": env.global_rank(),
        "env_local_rank": env.local_rank(),
        "env_main_address": env.main_address,
        "num_processes": accelerator.num_processes,
        "process_index": accelerator.process_index,
        "local_process_index": accelerator.local_process_index,
        "distributed_type": str(accelerator.distributed_type),
        "dist_world_size": (
            torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        ),
        "all_reduce_sum": total.item(),
        "losses": train(accelerator),
    }
    with open(os.path.join(out, f"rank-{accelerator.process_index}.json"), "w") as fh:
        json.dump(answers, fh)
    accelerator.end_training()
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
        mpi.Finalize()  # mpirun counts a process that skips it as failed
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def train(accelerator: Accelerator) -> list[float]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(GLOBAL_BATCH * STEPS, 8, generator=g)
    y = torch.randn(GLOBAL_BATCH * STEPS, 1, generator=g)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y),
        batch_size=GLOBAL_BATCH // accelerator.num_processes,
    )
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    losses = []
    for xb, yb in loader:
        loss = torch.nn.functional.mse_loss(model(xb), yb)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(accelerator.gather(loss.detach()[None]).mean().item())
    return losses


if __name__ == "__main__":
    main()
