"""Checkpoint IO speed against plain torch.save / torch.load, side by side in one run.

* save: TorchCheckpointIO (temporary file, fsync, rename, fsync of the directory)
  against ``torch.save(path)`` followed by an fsync of the file, 200 MB state.
  Target: at most 1.10x.
* async: how long AsyncCheckpointIO.save_checkpoint blocks the caller (the
  snapshot) against a synchronous save, from the second save on (the first one
  allocates the snapshot buffers; it is reported apart). Target: at most 10%.
* load: TorchCheckpointIO (weights_only) with and without mmap, against
  ``torch.load(weights_only=True)``.

Run: ``python benchmarks/bench_checkpoint.py [--mb 200] [--repeat 5] [--check]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
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


def timed(fn: Callable[[], Any]) -> float:
    # Start each measurement with no dirty pages: the kernel's writeback of an
    # earlier 200 MB write would otherwise throttle whichever save runs next.
    os.sync()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def plain_save(state: dict[str, Any], path: Path) -> None:
    with open(path, "wb") as fh:
        torch.save(state, fh)
        fh.flush()
        os.fsync(fh.fileno())


def run(megabytes: int, repeat: int, directory: Path) -> dict[str, float]:
    state = make_state(megabytes)
    io = plugin_registry.load("torch", kind="checkpoint_io")
    aio = plugin_registry.load("async", kind="checkpoint_io")
    ours, plain, blocked, sync = [], [], [], []
    for i in range(repeat):  # interleaved, alternating which goes first
        first_plain = i % 2 == 0
        if first_plain:
            plain.append(timed(lambda: plain_save(state, directory / "plain.pt")))
        ours.append(timed(lambda: io.save_checkpoint(state, directory / "ours.pt")))
        if not first_plain:
            plain.append(timed(lambda: plain_save(state, directory / "plain.pt")))
        sync.append(ours[-1])
        blocked.append(timed(lambda: aio.save_checkpoint(state, directory / "async.pt")))
        aio.wait()  # the loop would train meanwhile; wait outside the timing
    aio.teardown()
    load_plain, load_ours, load_mmap = [], [], []
    for _ in range(repeat):
        load_plain.append(timed(lambda: torch.load(directory / "ours.pt", weights_only=True)))
        load_ours.append(timed(lambda: io.load_checkpoint(directory / "ours.pt")))
        load_mmap.append(timed(lambda: io.load_checkpoint(directory / "ours.pt", mmap=True)))
    med = statistics.median
    return {
        "megabytes": megabytes,
        "save_plain_s": med(plain),
        "save_ours_s": med(ours),
        "save_ratio": med(ours) / med(plain),
        "async_blocked_first_s": blocked[0],
        "async_blocked_s": med(blocked[1:] or blocked),
        "async_blocked_ratio": med(blocked[1:] or blocked) / med(sync),
        "load_plain_s": med(load_plain),
        "load_ours_s": med(load_ours),
        "load_mmap_s": med(load_mmap),
        "load_ratio": med(load_ours) / med(load_plain),
        "load_mmap_ratio": med(load_mmap) / med(load_plain),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", type=Path, help="where to write (default: a temporary dir)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        r = run(args.mb, args.repeat, Path(tmp))
    print(f"checkpoint of {r['megabytes']} MB, median of {args.repeat}")
    print(
        f"save   plain torch.save+fsync {r['save_plain_s'] * 1e3:8.1f} ms   "
        f"TorchCheckpointIO {r['save_ours_s'] * 1e3:8.1f} ms   ratio {r['save_ratio']:.3f}"
        " (target <= 1.10)"
    )
    print(
        f"async  blocked {r['async_blocked_s'] * 1e3:8.1f} ms per save = "
        f"{r['async_blocked_ratio'] * 100:.1f}% of a synchronous save (target <= 10%); "
        f"first save, allocating its buffers: {r['async_blocked_first_s'] * 1e3:.1f} ms"
    )
    print(
        f"load   torch.load {r['load_plain_s'] * 1e3:8.1f} ms   ours {r['load_ours_s'] * 1e3:8.1f}"
        f" ms ({r['load_ratio']:.2f}x)   ours mmap {r['load_mmap_s'] * 1e3:8.1f} ms "
        f"({r['load_mmap_ratio']:.2f}x)"
    )
    ok = r["save_ratio"] <= 1.10 and r["async_blocked_ratio"] <= 0.10
    print(f"targets: {'met' if ok else 'MISSED'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(r, indent=2))
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    raise SystemExit(main())
