"""Kill a saving process with SIGKILL at random moments; check what is left on disk.

Run as a script (it forks, so it keeps torch single-threaded and away from pytest):

    python tests/workers/kill_during_save.py DIR ROUNDS SEED [--plain] [--io NAME] [--set KEY=VALUE]

Each round forks a child that saves two alternating states to DIR/ckpt.pt in a
loop (each state a few MB, so a save takes milliseconds and a kill often lands
inside one); the parent kills it after a random delay and loads what is there.
``--plain`` saves with bare ``torch.save`` instead of the plugin, to show the
harness does catch torn writes; ``--io safetensors`` tests that plugin (tensor-only
states); ``--set level=1`` passes an override to the plugin; random states (that a
compressing IO cannot shrink) are used for any IO but the built-ins. Prints one JSON
line of counts.
"""

from __future__ import annotations

import glob
import json
import os
import random
import signal
import sys
import time


def main() -> None:
    directory, rounds, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    plain = "--plain" in sys.argv
    name = sys.argv[sys.argv.index("--io") + 1] if "--io" in sys.argv else "torch"
    import torch

    torch.set_num_threads(1)  # no thread pool to inherit across fork()
    import plugin_registry

    overrides = dict(
        arg.split("=", 1) for i, arg in enumerate(sys.argv) if i and sys.argv[i - 1] == "--set"
    )
    io = plugin_registry.load(name, kind="checkpoint_io", **overrides)
    fill = (
        (lambda i: torch.full((1_000_000,), float(i)))
        if name in ("torch", "safetensors")
        else (lambda i: torch.rand(1_000_000, generator=torch.Generator().manual_seed(i)))
    )
    path = os.path.join(directory, "ckpt.pt")
    if name == "safetensors":
        states: list[dict[str, object]] = [
            {"weights": fill(i), "step": torch.tensor(i)} for i in (1, 2)
        ]
    else:
        states = [{"weights": fill(i), "step": i, "tag": f"state-{i}"} for i in (1, 2)]
    io.save_checkpoint(states[0], path)
    rng = random.Random(seed)
    # Median save time, so kill delays spread over a few saves.
    t0 = time.perf_counter()
    for _ in range(3):
        io.save_checkpoint(states[0], path)
    save_time = (time.perf_counter() - t0) / 3
    counts = {"rounds": rounds, "intact": 0, "corrupt": 0, "leftover_temporaries": 0}
    for _ in range(rounds):
        pid = os.fork()
        if pid == 0:  # child: save forever
            try:
                i = 0
                while True:
                    state = states[i % 2]
                    if plain:
                        torch.save(state, path)
                    else:
                        io.save_checkpoint(state, path)
                    i += 1
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.2, 3.0) * save_time)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        if glob.glob(os.path.join(directory, ".ckpt.pt.*.tmp")):
            counts["leftover_temporaries"] += 1
        try:
            loaded = torch.load(path, weights_only=True) if plain else io.load_checkpoint(path)
            ok = any(
                loaded.keys() == s.keys()
                and all(
                    torch.equal(v, s[k]) if isinstance(v, torch.Tensor) else v == s[k]
                    for k, v in loaded.items()
                )
                for s in states
            )
        except Exception:
            ok = False
        counts["intact" if ok else "corrupt"] += 1
        if not ok and plain:
            torch.save(states[0], path)  # start the next round from a good file
    # The next save by a live process removes the temporaries of the dead ones.
    if not plain:
        io.save_checkpoint(states[1], path)
    counts["temporaries_after_next_save"] = len(glob.glob(os.path.join(directory, ".ckpt.pt.*")))
    # Whatever the IO names its temporaries, nothing but the checkpoint may be left.
    counts["other_files_after_next_save"] = len(set(os.listdir(directory)) - {"ckpt.pt"})
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
