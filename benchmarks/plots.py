"""Plots for docs/benchmarks.md, drawn from a benchmark run's JSON (``nox -s bench``).

Reads ``benchmarks/results/NAME.json`` (listing, checkpoint, distributed_checkpoint,
precision, resolve) and writes ``docs/images/bench-*.png``; a missing result skips its
plot with a message.
Run: ``python benchmarks/plots.py [--results DIR] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent


def _load(results: Path, name: str) -> Any:
    path = results / f"{name}.json"
    if not path.exists():
        print(f"skipping {name}: {path} not found (run nox -s bench)")
        return None
    return json.loads(path.read_text())


def listing(data: dict[str, dict[str, float]], out: Path) -> None:
    sizes = sorted(int(n) for n in data)
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for key, label in (
        ("scan", "entry-point scan (importlib-metadata)"),
        ("cold", "list_plugins(), empty cache"),
        ("warm", "list_plugins(), warm cache"),
        ("stevedore", "stevedore, warm cache"),
    ):
        ys = [data[str(n)].get(key) for n in sizes]
        if all(y is not None for y in ys):
            ax.plot(sizes, [y * 1e3 for y in ys], marker="o", label=label)  # type: ignore[operator]
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("installed distributions")
    ax.set_ylabel("ms (median, fresh interpreter)")
    ax.set_title("Listing plugins")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "bench-listing.png", dpi=110)
    plt.close(fig)


def checkpoint(data: dict[str, float], out: Path) -> None:
    labels = [
        "limit: raw bytes + fsync",
        "torch.save + fsync",
        "TorchCheckpointIO save",
        "async: loop blocked",
        "copy floor (reused buffers)",
        "torch.load",
        "TorchCheckpointIO load",
        "load, mmap",
    ]
    keys = [
        "save_limit_s",
        "save_plain_s",
        "save_ours_s",
        "async_blocked_s",
        "async_copy_floor_s",
        "load_plain_s",
        "load_ours_s",
        "load_mmap_s",
    ]
    fig, ax = plt.subplots(figsize=(6.4, 4))
    values = [data[k] * 1e3 for k in keys]
    colors = ["#c33", "#888", "#2a6", "#2a6", "#c33", "#888", "#2a6", "#2a6"]
    ax.barh(labels, values, color=colors)
    ax.invert_yaxis()
    ax.set_xlabel(f"ms for a {data['megabytes']} MB state dict")
    ax.set_title("Checkpoint IO")
    fig.tight_layout()
    fig.savefig(out / "bench-checkpoint.png", dpi=110)
    plt.close(fig)


def distributed_checkpoint(data: dict[str, Any], out: Path) -> None:
    n, small = data["ranks"], max(2, data["ranks"] // 2)
    rows = [
        ("limit: rank 0 raw bytes + fsync", data["limit_s"], "#c33"),
        (f"distributed, {n} ranks", data["distributed_s"], "#2a6"),
        (f"distributed, {small} ranks", data["distributed_small_s"], "#2a6"),
        (f"gather to rank 0 + torch.save ({n} ranks)", data["gather_s"], "#888"),
        (f"async-distributed: caller held ({n} ranks)", data["async_blocked_s"], "#2a6"),
        (f"load on {small} ranks, saved by {small}", data["load_same_small_s"], "#888"),
        (f"load on {small} ranks, saved by {n}", data["load_other_small_s"], "#2a6"),
        (f"load on {n} ranks, saved by {n}", data["load_same_n_s"], "#888"),
        (f"load on {n} ranks, saved by {small}", data["load_other_n_s"], "#2a6"),
    ]
    fig, ax = plt.subplots(figsize=(7.2, 4.2))
    ax.barh([r[0] for r in rows], [r[1] * 1e3 for r in rows], color=[r[2] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel(f"ms for a {data['megabytes']} MB sharded state (median), gloo on the CPU")
    ax.set_title("Sharded checkpoints (torch.distributed.checkpoint)")
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    fig.savefig(out / "bench-distributed-checkpoint.png", dpi=110)
    plt.close(fig)


def precision(data: dict[str, Any], out: Path) -> None:
    times: dict[str, float] = data["times"]
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(times) + 1.5))
    names = list(times)
    ax.barh(
        names,
        [times[n] * 1e3 for n in names],
        color=["#2a6" if "plugin" in n else "#888" for n in names],
    )
    ax.invert_yaxis()
    ax.set_xlabel("ms per training step (median), CPU")
    ax.set_title("Precision plugins against hand-written loops")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(out / "bench-precision.png", dpi=110)
    plt.close(fig)


def resolve(data: dict[str, Any], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 2.6))
    labels = ["import torch", "first resolve()", "second resolve()"]
    values = [data["torch_import_ms"], data["first_resolve_ms"], data["second_resolve_ms"]]
    ax.barh(labels, values, color=["#888", "#2a6", "#2a6"])
    ax.axvline(data["target_ms"], color="#c33", linestyle="--", label="target for resolve()")
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("ms (median, fresh interpreter)")
    ax.set_title("Resolving, after the import of torch")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "bench-resolve.png", dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, draw in (
        ("listing", listing),
        ("checkpoint", checkpoint),
        ("distributed_checkpoint", distributed_checkpoint),
        ("precision", precision),
        ("resolve", resolve),
    ):
        data = _load(args.results, name)
        if data is not None:
            draw(data, args.out)
            print(f"wrote {args.out / f'bench-{name}.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
