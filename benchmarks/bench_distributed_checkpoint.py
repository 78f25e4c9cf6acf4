"""Sharded checkpoints: the `distributed` IO on N ranks against the disk's limit and a gather.

Under torchrun (gloo, CPU), a state of MB megabytes held as DTensors sharded over
the ranks (as FSDP2 holds it):

* limit: rank 0 writes the same number of bytes raw to a new file and fsyncs it,
  the other ranks idle: what the disk allows (measured in the N-rank and in the
  N/2-rank run). The fastest of those writes counts: the disk's best, and the
  hardest yardstick. (The median once counted; on the team's virtual machine these
  raw writes varied 116-842 ms within one run, their median slower than the sharded
  saves beside them, and said little of the disk: memory free for seconds is slow
  to write there, see docs/checkpoint-io.md.) The previous file is deleted before
  the timing: inside it, the timed fsync paid for releasing its blocks.
* distributed: every rank writes its shards through the `distributed` checkpoint
  IO (and the coordinator commits), replacing the last save's. Aggregate throughput
  = MB / wall time. A process's first save (DCP's imports, a plan made from
  scratch) is timed on its own and reported, not counted in the repeats. Targets
  (issue 32): on N/2 = 2 ranks at least 0.8x the limit's throughput in every
  repeat; on N = 4 ranks (sharing 2 cores) at least 0.6x; at 4 ranks at least 1.5x
  the throughput of the baseline below.
* gather: the usual single-file way: every DTensor gathered whole on rank 0, then
  ``torch.save`` + fsync there.
* async-distributed: how long the caller is held per save (the shards are copied
  into CPU buffers kept from the previous save) against the floor of that: a bare
  copy of the rank's shards into buffers kept from the last copy (target: at most
  1.3x, the slowest rank's), the two in alternating order. Each rank times its own
  call; the time up to the ranks' barrier after it is reported too (the write
  thread's Python holds the GIL meanwhile).
* load at another world size: a checkpoint written by 4 ranks loaded by 2 (and
  one written by 2 loaded by 4), against a load of a checkpoint written at the
  same world size. Target: within 1.2x.

Each phase is one torchrun run; the figures come from one invocation of this
script. Run: ``python benchmarks/bench_distributed_checkpoint.py [--mb 200]
[--repeat 5] [--dir DIR] [--check] [--json OUT]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

TARGETS = {
    "throughput_vs_limit": 0.6,
    "worst_vs_limit_small": 0.8,
    "speedup_vs_gather": 1.5,
}
#: At most this many times the copy floor (the caller of an async-distributed save).
ASYNC_TARGET = 1.3
LOAD_TARGET = 1.2


def _worker(args: argparse.Namespace) -> None:
    import datetime

    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    import plugin_registry as pr

    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=600))
    rank, world = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,))
    layers = max(1, args.mb // 4)  # 4 MB of float32 each, rows divisible by 12
    g = torch.Generator().manual_seed(0)

    def state() -> dict[str, Any]:
        full = {f"layer{i}.weight": torch.randn(1536, 683, generator=g) for i in range(layers)}
        return {
            "model": {k: distribute_tensor(v, mesh, [Shard(0)]) for k, v in full.items()},
            "step": 7,
        }

    def template() -> dict[str, Any]:
        return {
            "model": {
                f"layer{i}.weight": distribute_tensor(torch.zeros(1536, 683), mesh, [Shard(0)])
                for i in range(layers)
            },
            "step": 0,
        }

    io = pr.load("distributed", kind="checkpoint_io")
    root = Path(args.root)
    results: dict[str, list[float]] = {}

    def timed(name: str, fn: Any, held: str | None = None) -> None:
        """Time ``fn`` on every rank from a common start to the last rank's end (the
        job's wait); with ``held``, also this rank's own time in ``fn`` (what its caller
        is held: the slowest rank's is reported)."""
        # No earlier save's removal of the data it replaced still running (a thread).
        for thread in threading.enumerate():
            if thread.name == "DistributedCheckpointIO-tidy":
                thread.join()
        dist.barrier()
        if rank == 0:
            (root / "raw.bin").unlink(missing_ok=True)  # before the timing: see the docstring
            os.sync()
        dist.barrier()
        t0 = time.perf_counter()
        fn()
        if held is not None:
            results.setdefault(held, []).append(time.perf_counter() - t0)
        dist.barrier()
        results.setdefault(name, []).append(time.perf_counter() - t0)

    # The bytes of the raw write, in memory already (as a state dict's are).
    data = torch.randn(layers * 1536 * 683, generator=g) if rank == 0 else None

    def raw() -> None:
        if data is not None:
            path = root / "raw.bin"
            with open(path, "xb") as fh:
                for chunk in data.split(1536 * 683):
                    fh.write(memoryview(chunk.numpy()).cast("B"))
                fh.flush()
                os.fsync(fh.fileno())

    def gather(sd: dict[str, Any]) -> None:
        full = {k: v.full_tensor() for k, v in sd["model"].items()}  # collective
        if rank == 0:
            path = root / "gathered.pt"
            path.unlink(missing_ok=True)
            with open(path, "xb") as fh:
                torch.save({"model": full, "step": sd["step"]}, fh)
                fh.flush()
                os.fsync(fh.fileno())

    def copy_shards(sd: dict[str, Any], into: dict[str, Any]) -> None:
        for key, value in sd["model"].items():
            into[key].copy_(value.to_local())

    if args.phase == "save":
        sd = state()
        kept = {k: v.to_local().clone() for k, v in sd["model"].items()}
        target = root / f"ck-{world}"
        aio = pr.load("async-distributed", kind="checkpoint_io")
        # A process's first save imports DCP's modules and plans from scratch: timed on
        # its own ("first save"), outside the repeats the targets are judged on.
        timed("distributed first", lambda: io.save_checkpoint(sd, target))
        timed("limit first", raw)  # the first raw write, as untimed as the save's
        for i in range(args.repeat):
            steps = [
                ("limit", raw),
                ("distributed", lambda: io.save_checkpoint(sd, target)),
                ("gather", lambda: gather(sd)),
            ]
            for k in range(len(steps)):
                name, fn = steps[(i + k) % len(steps)]
                timed(name, fn)
            # How long the caller is held by an async save (staging); the write is waited
            # for outside the timing, as a training loop would go on meanwhile. The copy
            # floor goes first every other repeat, so neither always follows the same
            # phase (a gather's freed memory, a save's written pages).
            pair = [
                (
                    "async to barrier",
                    "async blocked",
                    lambda: aio.save_checkpoint(sd, root / f"async-{world}"),
                ),
                ("copy floor to barrier", "copy floor", lambda: copy_shards(sd, kept)),
            ]
            for name, held, fn in pair if i % 2 == 0 else pair[::-1]:
                timed(name, fn, held=held)
                aio.wait()
        aio.teardown()
        for _ in range(args.repeat):
            timed(
                f"load {world} from {world}", lambda: io.load_checkpoint(target, state=template())
            )
    else:  # load: the other world size's checkpoint against this one's
        other = int(args.other)
        for _ in range(args.repeat):
            for source in (world, other):
                timed(
                    f"load {world} from {source}",
                    lambda source=source: io.load_checkpoint(
                        root / f"ck-{source}", state=template()
                    ),
                )
    # Each rank's times; per measurement the slowest rank's is what the job waits for.
    everyone: list[dict[str, list[float]]] = [{} for _ in range(world)]
    dist.all_gather_object(everyone, results)
    if rank == 0:
        slowest = {
            k: [max(r[k][i] for r in everyone) for i in range(len(v))] for k, v in results.items()
        }
        print("RESULT " + json.dumps(slowest), flush=True)
    dist.destroy_process_group()
    # torch 2.13's gloo can abort a finished process at interpreter exit ("terminate called
    # without an active exception"; docs/dev/KNOWN_GAPS.md): the figures are out, so leave.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _torchrun(nproc: int, *args: str) -> dict[str, list[float]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         "--nproc-per-node", str(nproc), __file__, "--worker", *args],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"torchrun with {nproc} ranks failed ({proc.returncode})")
    result: dict[str, list[float]] = json.loads(lines[-1][len("RESULT ") :])
    return result


def run(mb: int, repeat: int, directory: Path, ranks: int) -> dict[str, Any]:
    common = ["--root", str(directory), "--mb", str(mb), "--repeat", str(repeat)]
    small = max(2, ranks // 2)
    at_n = _torchrun(ranks, "--phase", "save", *common)
    at_small = _torchrun(small, "--phase", "save", *common)
    load_small = _torchrun(small, "--phase", "load", "--other", str(ranks), *common)
    load_n = _torchrun(ranks, "--phase", "load", "--other", str(small), *common)
    med = statistics.median
    ours, gather = med(at_n["distributed"]), med(at_n["gather"])
    # The disk's limit as the fastest raw write of both runs: the conservative one.
    limit = min(at_n["limit"] + at_small["limit"])
    same_small = med(load_small[f"load {small} from {small}"])
    other_small = med(load_small[f"load {small} from {ranks}"])
    same_n = med(load_n[f"load {ranks} from {ranks}"])
    other_n = med(load_n[f"load {ranks} from {small}"])
    return {
        "megabytes": mb,
        "ranks": ranks,
        "limit_s": limit,
        "limit_median_s": med(at_n["limit"] + at_small["limit"]),
        "distributed_s": ours,
        "gather_s": gather,
        "distributed_small_s": med(at_small["distributed"]),
        "distributed_first_s": at_n["distributed first"][0],
        "distributed_small_first_s": at_small["distributed first"][0],
        "throughput_limit_mb_s": mb / limit,
        "throughput_mb_s": mb / ours,
        "throughput_vs_limit": limit / ours,
        "throughput_vs_limit_small": limit / med(at_small["distributed"]),
        "async_blocked_first_s": at_n["async blocked"][0],
        "async_blocked_s": med(at_n["async blocked"][1:]),
        "async_blocked_ratio": med(at_n["async blocked"][1:]) / ours,
        "async_copy_floor_s": med(at_n["copy floor"]),
        "async_blocked_vs_floor": med(at_n["async blocked"][1:]) / med(at_n["copy floor"]),
        # Up to the ranks' barrier after the call: the background thread's planning holds
        # the GIL while the caller goes on (what a loop's next Python work meets).
        "async_blocked_samples_s": at_n["async blocked"],
        "copy_floor_samples_s": at_n["copy floor"],
        "async_to_barrier_s": med(at_n["async to barrier"][1:]),
        "copy_floor_to_barrier_s": med(at_n["copy floor to barrier"]),
        "limit_samples_s": at_n["limit"],
        "limit_small_samples_s": at_small["limit"],
        "worst_vs_limit_small": limit / max(at_small["distributed"]),
        "distributed_small_samples_s": at_small["distributed"],
        "speedup_vs_gather": gather / ours,
        "load_same_small_s": same_small,
        "load_other_small_s": other_small,
        "load_same_n_s": same_n,
        "load_other_n_s": other_n,
        "load_reshard_ratio_small": other_small / same_small,
        "load_reshard_ratio_n": other_n / same_n,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--ranks", type=int, default=4)
    parser.add_argument("--dir", type=Path, help="where to write (default: a temporary dir)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--other", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return 0
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        r = run(args.mb, args.repeat, Path(tmp), args.ranks)
    n, small = r["ranks"], max(2, r["ranks"] // 2)
    print(
        f"sharded checkpoint of {r['megabytes']} MB on {n} ranks, median of {args.repeat} "
        "(each the slowest rank's)"
    )
    print(
        f"limit (rank 0 raw bytes + fsync) {r['limit_s'] * 1e3:7.1f} ms "
        f"({r['throughput_limit_mb_s']:.0f} MB/s; the fastest raw write, their median "
        f"{r['limit_median_s'] * 1e3:.1f} ms)"
    )
    print(
        f"distributed, {n} ranks         {r['distributed_s'] * 1e3:7.1f} ms "
        f"({r['throughput_mb_s']:.0f} MB/s = {r['throughput_vs_limit']:.2f}x the limit, "
        f"target >= 0.6); on {small} ranks {r['distributed_small_s'] * 1e3:.1f} ms "
        f"({r['throughput_vs_limit_small']:.2f}x; slowest of {args.repeat} "
        f"{max(r['distributed_small_samples_s']) * 1e3:.1f} ms = "
        f"{r['worst_vs_limit_small']:.2f}x, target >= 0.8 in every repeat); a process's "
        f"first save {r['distributed_first_s'] * 1e3:.1f} ms on {n} ranks, "
        f"{r['distributed_small_first_s'] * 1e3:.1f} ms on {small}"
    )
    print(
        f"gather on rank 0 + torch.save    {r['gather_s'] * 1e3:7.1f} ms "
        f"(distributed is {r['speedup_vs_gather']:.2f}x faster, target >= 1.5)"
    )
    print(
        f"async-distributed: caller held {r['async_blocked_s'] * 1e3:.1f} ms per save from the "
        f"second on = {r['async_blocked_vs_floor']:.2f}x the copy floor of the shards "
        f"({r['async_copy_floor_s'] * 1e3:.1f} ms; target <= {ASYNC_TARGET}), "
        f"{r['async_blocked_ratio'] * 100:.1f}% of a synchronous sharded save; "
        f"first save {r['async_blocked_first_s'] * 1e3:.1f} ms; up to the ranks' barrier "
        f"after it {r['async_to_barrier_s'] * 1e3:.1f} ms (the copy's "
        f"{r['copy_floor_to_barrier_s'] * 1e3:.1f} ms)"
    )
    print(
        f"load on {small} ranks: written by {small} {r['load_same_small_s'] * 1e3:.1f} ms, by {n} "
        f"{r['load_other_small_s'] * 1e3:.1f} ms ({r['load_reshard_ratio_small']:.2f}x); "
        f"on {n} ranks: by {n} {r['load_same_n_s'] * 1e3:.1f} ms, by {small} "
        f"{r['load_other_n_s'] * 1e3:.1f} ms ({r['load_reshard_ratio_n']:.2f}x); target <= 1.2"
    )
    missed = [k for k, target in TARGETS.items() if r[k] < target]
    missed += [
        k for k in ("load_reshard_ratio_small", "load_reshard_ratio_n") if r[k] > LOAD_TARGET
    ]
    if r["async_blocked_vs_floor"] > ASYNC_TARGET:
        missed.append("async_blocked_vs_floor")
    print(f"targets: {'met' if not missed else 'MISSED ' + ', '.join(missed)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(r, indent=2))
    return 0 if not missed or not args.check else 1


if __name__ == "__main__":
    raise SystemExit(main())
