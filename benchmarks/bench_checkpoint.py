"""Checkpoint IO speed against the disk's limit and torch.save, side by side in one run.

* limit: the same tensor bytes written raw to a new file, one write per tensor,
  then an fsync: what the disk allows.
* save: TorchCheckpointIO (temporary file, fsync, rename, fsync of the directory)
  against the limit (target: at most 1.10x) and against ``torch.save`` to a new file
  followed by an fsync; 200 MB state.
* async: how long AsyncCheckpointIO.save_checkpoint blocks the caller (the
  snapshot), from the second save on, against the floor of a consistent CPU snapshot:
  a bare copy of the same tensors into buffers kept from the last copy (target: at
  most 1.3x); and the first save of a fresh plugin, which allocates its snapshot
  buffers (target: at most 1.0x a synchronous save).
* load: TorchCheckpointIO (weights_only) with and without mmap, against
  ``torch.load(weights_only=True)``.

Every measurement starts with no dirty pages (``os.sync()``) and with the files of
earlier measurements deleted outside the timing; one untimed round of each save goes
first (on this machine the writes of the first second took up to 4x as long, raw
writes and saves alike).

Run: ``python benchmarks/bench_checkpoint.py [--mb 200] [--repeat 9] [--check]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import plugin_registry


def make_state(megabytes: int) -> dict[str, Any]:
    per_layer = 1024 * 1024  # 4 MB of float32
    layers = max(1, megabytes // 4)
    g = torch.Generator().manual_seed(0)
    return {
        "model": {f"layer{i}.weight": torch.randn(per_layer, generator=g) for i in range(layers)},
        "step": 100,
    }


def settle() -> None:
    """No dirty pages, and no old file still being released by a save's helper thread."""
    for thread in threading.enumerate():
        if thread.name == "atomic_write-release":
            thread.join()
    os.sync()


def timed(fn: Callable[[], Any], before: Callable[[], Any] | None = None) -> float:
    """Seconds ``fn`` takes, after ``before`` (untimed) and :func:`settle`."""
    if before is not None:
        before()
    settle()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def delete(path: Path) -> Callable[[], None]:
    """Deletes ``path`` (before the timing): every write goes to a new file, as an atomic
    save's does. Deleted inside the timing, the freed blocks are released by the next
    journal commit, the timed fsync's: on this ext4 (mounted with ``discard``) that added
    ~35 ms to a 100 ms raw write of 200 MB and made the "limit" slower than a save, which
    releases its replaced file in a helper thread."""
    return lambda: path.unlink(missing_ok=True)


def raw_write(state: dict[str, Any], path: Path) -> None:
    with open(path, "xb") as fh:
        for tensor in state["model"].values():
            fh.write(memoryview(tensor.numpy()).cast("B"))
        fh.flush()
        os.fsync(fh.fileno())


def plain_save(state: dict[str, Any], path: Path) -> None:
    with open(path, "xb") as fh:
        torch.save(state, fh)
        fh.flush()
        os.fsync(fh.fileno())


def copy_into(state: dict[str, Any], buffers: dict[str, Any]) -> None:
    """The floor of a snapshot: each tensor copied into a buffer kept from the last copy."""
    for key, tensor in state["model"].items():
        buffers[key].copy_(tensor)


def run(megabytes: int, repeat: int, directory: Path) -> dict[str, Any]:
    state = make_state(megabytes)
    io = plugin_registry.load("torch", kind="checkpoint_io")
    limit: list[float] = []
    plain: list[float] = []
    ours: list[float] = []
    blocked: list[float] = []
    floor: list[float] = []
    first: list[float] = []
    buffers = {k: torch.empty_like(v) for k, v in state["model"].items()}
    copy_into(state, buffers)  # touched once, as the async IO's kept buffers are
    raw, plain_file, ours_file = (directory / n for n in ("raw.bin", "plain.pt", "ours.pt"))
    steps = [
        (limit, lambda: raw_write(state, raw), delete(raw)),
        (plain, lambda: plain_save(state, plain_file), delete(plain_file)),
        # A save replaces its file, as a loop's saves do; it releases the old one in a
        # helper thread, which settle() waits for.
        (ours, lambda: io.save_checkpoint(state, ours_file), None),
    ]
    for _, fn, before in steps:  # the untimed round
        timed(fn, before)
    for i in range(repeat):  # interleaved, rotating which goes first
        for k in range(len(steps)):
            out, fn, before = steps[(i + k) % len(steps)]
            out.append(timed(fn, before))
        # A fresh async plugin: its first save allocates the snapshot buffers.
        aio = plugin_registry.load("async", kind="checkpoint_io")

        def async_save(aio: Any = aio) -> None:
            aio.save_checkpoint(state, directory / "async.pt")

        first.append(timed(async_save))
        aio.wait()  # the loop would train meanwhile; waiting is outside the timing
        for _ in range(2):  # side by side with the floor, alternating which goes first
            pair = [
                (blocked, async_save),
                (floor, lambda: copy_into(state, buffers)),
            ]
            for out, fn in pair if i % 2 == 0 else pair[::-1]:
                out.append(timed(fn))
                aio.wait()
        aio.teardown()
    load_plain, load_ours, load_mmap = [], [], []
    for _ in range(repeat):
        load_plain.append(timed(lambda: torch.load(directory / "ours.pt", weights_only=True)))
        load_ours.append(timed(lambda: io.load_checkpoint(directory / "ours.pt")))
        load_mmap.append(timed(lambda: io.load_checkpoint(directory / "ours.pt", mmap=True)))
    med = statistics.median
    return {
        "megabytes": megabytes,
        "save_limit_s": med(limit),
        "save_plain_s": med(plain),
        "save_ours_s": med(ours),
        "save_ratio": med(ours) / med(limit),
        "save_plain_ratio": med(plain) / med(limit),
        "save_vs_torch_save": med(ours) / med(plain),
        "async_blocked_first_s": med(first),
        "async_first_ratio": med(first) / med(ours),
        "async_blocked_s": med(blocked),
        "async_blocked_ratio": med(blocked) / med(ours),
        "async_copy_floor_s": med(floor),
        "async_blocked_vs_floor": med(blocked) / med(floor),
        "load_plain_s": med(load_plain),
        "load_ours_s": med(load_ours),
        "load_mmap_s": med(load_mmap),
        "load_ratio": med(load_ours) / med(load_plain),
        "load_mmap_ratio": med(load_mmap) / med(load_plain),
        "save_limit_samples_s": limit,
        "save_ours_samples_s": ours,
    }


TARGETS = {"save_ratio": 1.10, "async_blocked_vs_floor": 1.3, "async_first_ratio": 1.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--dir", type=Path, help="where to write (default: a temporary dir)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        r = run(args.mb, args.repeat, Path(tmp))
    print(f"checkpoint of {r['megabytes']} MB, median of {args.repeat}")
    print(
        f"save   limit (raw bytes + fsync) {r['save_limit_s'] * 1e3:7.1f} ms   "
        f"torch.save + fsync {r['save_plain_s'] * 1e3:7.1f} ms ({r['save_plain_ratio']:.2f}x)   "
        f"TorchCheckpointIO {r['save_ours_s'] * 1e3:7.1f} ms ({r['save_ratio']:.3f}x the limit, "
        f"target <= 1.10; {r['save_vs_torch_save']:.2f}x torch.save)"
    )
    print(
        f"async  blocked {r['async_blocked_s'] * 1e3:7.1f} ms per save = "
        f"{r['async_blocked_vs_floor']:.2f}x the copy floor of {r['async_copy_floor_s'] * 1e3:.1f}"
        f" ms (target <= 1.3), {r['async_blocked_ratio'] * 100:.1f}% of a synchronous save; "
        f"first save of a fresh plugin {r['async_blocked_first_s'] * 1e3:.1f} ms = "
        f"{r['async_first_ratio']:.2f}x a synchronous save (target <= 1.0)"
    )
    print(
        f"load   torch.load {r['load_plain_s'] * 1e3:8.1f} ms   ours {r['load_ours_s'] * 1e3:8.1f}"
        f" ms ({r['load_ratio']:.2f}x)   ours mmap {r['load_mmap_s'] * 1e3:8.1f} ms "
        f"({r['load_mmap_ratio']:.2f}x)"
    )
    missed = [k for k, target in TARGETS.items() if r[k] > target]
    print(f"targets: {'met' if not missed else 'MISSED ' + ', '.join(missed)}")
    ok = not missed
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(r, indent=2))
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    raise SystemExit(main())
