"""Kill a process inside ``Accelerator.save_state`` with SIGKILL; check what loads after.

    python tests/workers/accelerate_kill.py DIR ROUNDS SEED [--io NAME | --plain]

The parent prepares a model (about 4 MB), an Adam optimizer and a registered
counter, saves state 0, then each round forks a child that saves states 1, 2, 3...
to DIR in a loop, every object of state k filled with k, and kills it after a
random delay. The parent then loads DIR: a state is intact when it loads and every
object says the same k (weights, optimizer moments, counter, step). ``--io NAME``
saves through that checkpoint IO (default ``torch``); ``--plain`` through
Accelerate's own ``save_state``, to show the harness catches a torn or mixed state.
Prints one JSON line of counts.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from typing import Any

import torch


class Counter:
    def __init__(self) -> None:
        self.k = 0

    def state_dict(self) -> dict[str, Any]:
        return {"k": self.k}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.k = state["k"]


def fill(accelerator: Any, model: Any, optimizer: Any, counter: Counter, k: int) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(k)
    for state in optimizer.optimizer.state.values():
        state["exp_avg"].fill_(k)
    counter.k = k
    accelerator.step = k


def agreed(accelerator: Any, model: Any, optimizer: Any, counter: Counter) -> int | None:
    """The k every object says, or None when they disagree."""
    ks = {
        float(p.detach().unique().item()) if p.detach().unique().numel() == 1 else -1.0
        for p in model.parameters()
    }
    ks |= {
        float(s["exp_avg"].unique().item()) if s["exp_avg"].unique().numel() == 1 else -1.0
        for s in optimizer.optimizer.state.values()
    }
    ks |= {float(counter.k), float(accelerator.step)}
    return int(ks.pop()) if len(ks) == 1 else None


def main() -> None:
    directory, rounds, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    plain = "--plain" in sys.argv
    name = sys.argv[sys.argv.index("--io") + 1] if "--io" in sys.argv else "torch"
    torch.set_num_threads(1)  # no thread pool to inherit across fork()
    if plain:
        from accelerate import Accelerator

        accelerator = Accelerator()
    else:
        from plugin_registry.accelerate import Accelerator as RegistryAccelerator

        accelerator = RegistryAccelerator(plugins=[name])
    model = torch.nn.Linear(1000, 1000)
    optimizer = torch.optim.Adam(model.parameters())
    model, optimizer = accelerator.prepare(model, optimizer)
    model(torch.ones(1, 1000)).sum().backward()
    optimizer.step()  # the moments exist from here on
    counter = Counter()
    accelerator.register_for_checkpointing(counter)
    fill(accelerator, model, optimizer, counter, 0)
    accelerator.save_state(directory)
    # An async IO's thread does not survive fork(): nothing may be in flight then.
    wait = getattr(getattr(accelerator, "checkpoint_io", None), "wait", lambda: None)
    wait()
    t0 = time.perf_counter()
    accelerator.save_state(directory)
    wait()
    save_time = time.perf_counter() - t0
    rng = random.Random(seed)
    counts = {"rounds": rounds, "intact": 0, "corrupt": 0, "mixed": 0, "killed_inside": 0}
    errors: list[str] = []
    for _ in range(rounds):
        wait()
        pid = os.fork()
        if pid == 0:  # the child saves until killed
            k = 1
            while True:
                fill(accelerator, model, optimizer, counter, k)
                accelerator.save_state(directory)
                k += 1
        time.sleep(save_time * rng.uniform(1.5, 6.0))
        names_before = set(os.listdir(directory))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        names = set(os.listdir(directory))
        if names - _FINAL or names_before - _FINAL:
            counts["killed_inside"] += 1
        fill(accelerator, model, optimizer, counter, -7)
        try:
            accelerator.load_state(directory)
        except Exception as exc:  # a torn file: what the test counts
            counts["corrupt"] += 1
            errors.append(f"{type(exc).__name__}: {exc}"[:200])
            continue
        if agreed(accelerator, model, optimizer, counter) is None:
            counts["mixed"] += 1
        else:
            counts["intact"] += 1
    counts["errors"] = errors[:3]
    print(json.dumps(counts))


#: What a finished save leaves in the folder (the registry's one file, or Accelerate's).
_FINAL = {
    "plugin_registry_state.ckpt",
    "model.safetensors",
    "optimizer.bin",
    "random_states_0.pkl",
    "custom_checkpoint_0.pkl",
}

if __name__ == "__main__":
    main()
