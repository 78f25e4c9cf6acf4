"""FSDP2 training with sharded checkpoints, under torchrun (gloo, CPU).

    torchrun --nproc-per-node N tests/workers/dcp_worker.py ROOT --io NAME --steps S --every K
        [--resume] [--kill-at STEP] [--fail-at STEP] [--no-wait]

Trains a small model sharded with ``fully_shard`` on a fixed global batch of 12
(each rank takes its slice, so any world size dividing 12 follows the same loss
trajectory), saving ``{"model", "optim", "step"}`` to ``ROOT/step-K`` every K
steps through the named checkpoint IO plugin. ``--resume`` first loads the
newest committed checkpoint under ROOT into this run's sharding (a different
world size reshards). Rank ``--victim`` (1) can be made to die (SIGKILL, after its shards are
written and before the commit) or fail (an OSError) while saving a given step.

Rank 0 prints JSON lines: ``{"step", "loss"}``, ``{"saved"}``, ``{"skipped",
"why"}``, ``{"resumed", "digest"}``, ``{"error"}`` and at the end ``{"digest"}``
(a hash of the full model and optimizer state, comparable across world sizes).
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import errno
import hashlib
import json
import os
import re
import signal
import sys
from typing import Any

import torch

BATCH = 12


def digest(state: dict[str, Any]) -> str:
    """A hash of every tensor (by sorted key path) and plain value in ``state``."""
    h = hashlib.sha256()

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key in sorted(value, key=str):
                walk(value[key], f"{path}/{key}")
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                walk(item, f"{path}/{i}")
        elif isinstance(value, torch.Tensor):
            h.update(path.encode())
            h.update(
                value.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes()
            )
        else:
            h.update(f"{path}={value!r}".encode())

    walk(state, "")
    return h.hexdigest()[:16]


def build() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 32), torch.nn.Tanh(),
        torch.nn.Linear(32, 4),
    )  # fmt: skip


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step)
    return torch.randn(BATCH, 8, generator=g), torch.randn(BATCH, 4, generator=g)


def say(**fields: Any) -> None:
    # One write() per line: ranks share the pipe, and print() may split a line in two
    # writes that another rank's line then lands between.
    os.write(1, (json.dumps(fields) + "\n").encode())


def sabotage(
    rank: int, victim: int, kill_at: int | None, fail_at: int | None, step: list[int]
) -> None:
    """Make rank ``victim``'s shard writes die or fail at the chosen step."""
    from torch.distributed.checkpoint import FileSystemWriter

    original = FileSystemWriter.write_data

    def write_data(self: Any, plan: Any, planner: Any) -> Any:
        # The step a write belongs to is in its path (.../step-4/...): an async save
        # writes in the background, when the loop's counter may have moved on already.
        parts = os.fspath(self.path).split(os.sep)
        saving = next((int(p[5:]) for p in parts if re.fullmatch(r"step-\d+", p)), step[0])
        if rank == victim and saving == fail_at:
            raise OSError(errno.ENOSPC, "No space left on device (simulated)")
        result = original(self, plan, planner)
        if rank == victim and saving == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # shards written, nothing committed
        return result

    FileSystemWriter.write_data = write_data  # type: ignore[method-assign]


_FINISHED: list[bool] = []


def _skip_interpreter_teardown() -> None:
    """Registered first, so it runs last at exit (after the checkpoint IOs' exit guards).

    About one run in 20 of 4 gloo ranks with a device mesh aborts ("terminate called
    without an active exception") in the interpreter's teardown after everything was
    done, process group destroyed: torch's, not ours, and it would fail the test. A
    run that finished skips that teardown; one that raised exits as it would.
    """
    if _FINISHED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def main() -> None:
    atexit.register(_skip_interpreter_teardown)
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("--io", default="distributed")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--every", type=int, default=2)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--kill-at", type=int)
    parser.add_argument("--fail-at", type=int)
    parser.add_argument("--victim", type=int, default=1)
    parser.add_argument("--no-wait", action="store_true")
    args = parser.parse_args()

    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
        get_state_dict,
        set_state_dict,
    )
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    import plugin_registry as pr
    from plugin_registry.errors import CheckpointError

    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    rank, world = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,))
    model = build()
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    optim = torch.optim.Adam(model.parameters(), lr=0.01)
    io = pr.load(args.io, kind="checkpoint_io")
    step = [0]
    sabotage(rank, args.victim, args.kill_at, args.fail_at, step)

    def full_digest() -> str:
        full = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return digest(
            {
                "model": get_model_state_dict(model, options=full),
                "optim": get_optimizer_state_dict(model, optim, options=full),
            }
        )

    if args.resume:
        names = [n for n in os.listdir(args.root) if n.startswith("step-")]
        for name in sorted(names, key=lambda n: int(n.split("-")[1]), reverse=True):
            msd, osd = get_state_dict(model, optim)
            state = {"model": msd, "optim": osd, "step": 0}
            try:
                io.load_checkpoint(os.path.join(args.root, name), state=state)
            except CheckpointError as exc:
                if exc.reason != "incomplete":
                    raise
                if rank == 0:
                    say(skipped=name, why=str(exc))
                continue
            set_state_dict(
                model, optim, model_state_dict=state["model"], optim_state_dict=state["optim"]
            )
            step[0] = state["step"]
            d = full_digest()
            if rank == 0:
                say(resumed=step[0], digest=d, world=world)
            break

    while step[0] < args.steps:
        step[0] += 1
        x, y = batch(step[0])
        xs, ys = x.chunk(world)[rank], y.chunk(world)[rank]
        loss = torch.nn.functional.mse_loss(model(xs), ys)
        loss.backward()
        optim.step()
        optim.zero_grad()
        total = loss.detach().clone()
        dist.all_reduce(total)
        if rank == 0:
            say(step=step[0], loss=float(total) / world)
        if step[0] % args.every == 0:
            msd, osd = get_state_dict(model, optim)
            try:
                io.save_checkpoint(
                    {"model": msd, "optim": osd, "step": step[0]},
                    os.path.join(args.root, f"step-{step[0]}"),
                )
            except CheckpointError as exc:
                say(rank=rank, error=str(exc), step=step[0])
                continue
            if rank == 0:
                say(saved=step[0], digest=full_digest())
            else:
                full_digest()  # collective

    if not args.no_wait:
        try:
            io.teardown()
        except CheckpointError as exc:
            say(rank=rank, error=str(exc), step=step[0])
    d = full_digest()
    if rank == 0:
        say(digest=d, world=world)
    _FINISHED.append(True)
    if args.no_wait:
        sys.stdout.flush()
        return  # leave the last save to the exit guards; the group must stay up for it
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
