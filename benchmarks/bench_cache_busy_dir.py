"""Warm listing from a busy working directory, against a quiet one (issue 13, item 14).

The working directory is ``sys.path[0]``. A training script writes checkpoints
and logs there, so its mtime changes all the time. Before issue 13 every such
change forced a full rescan; now the directory's distribution entries are
listed and compared. Each measurement runs in a fresh interpreter, timed
inside it around ``Registry().list_plugins()`` with the cache in place:

* ``quiet``  the working directory has not changed since the cache was written
* ``busy``   it holds ``--files`` files and one more was written just before
* ``cold``   no cache at all (what every start from a busy directory cost before)
* ``eggs``   ``quiet`` with 20 ``*.egg-info`` directories on the path, whose
             ``entry_points.txt`` are stat'ed on every start (legacy develop installs)

Target: ``busy`` within 1.5x of ``quiet``, and far below ``cold``.
Run: ``python benchmarks/bench_cache_busy_dir.py [--repeat 9] [--files 5000] [--json F]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_SNIPPET = """
import sys, time
sys.path.insert(0, {extra!r}) if {extra!r} else None
import plugin_registry
from plugin_registry.registry import Registry
t0 = time.perf_counter()
Registry(cache={cache}).list_plugins()
print(time.perf_counter() - t0)
"""


def run(cwd: Path, cache_dir: Path, *, cache: bool = True, extra: str = "") -> float:
    env = {**os.environ, "PLUGIN_REGISTRY_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(REPO)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    code = _SNIPPET.format(cache=cache, extra=extra)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        quiet, busy, eggs = root / "quiet", root / "busy", root / "eggs"
        for d in (quiet, busy, eggs):
            d.mkdir()
        for i in range(args.files):
            (busy / f"step-{i}.log").write_bytes(b"")
        for i in range(20):
            egg = eggs / f"legacy{i}.egg-info"
            egg.mkdir()
            (egg / "PKG-INFO").write_text(f"Metadata-Version: 2.1\nName: legacy{i}\nVersion: 1\n")
            (egg / "entry_points.txt").write_text("[console_scripts]\nx = y:z\n")
        cache = root / "cache"
        times: dict[str, list[float]] = {"quiet": [], "busy": [], "cold": [], "eggs": []}
        run(quiet, cache)  # warm the cache for each directory
        run(busy, cache)
        run(eggs, cache, extra=str(eggs))
        for i in range(args.repeat):
            times["quiet"].append(run(quiet, cache))
            (busy / f"checkpoint-{i}.pt").write_bytes(b"x")  # the directory just changed
            times["busy"].append(run(busy, cache))
            times["cold"].append(run(busy, cache, cache=False))
            times["eggs"].append(run(eggs, cache, extra=str(eggs)))
    medians = {k: statistics.median(v) * 1000 for k, v in times.items()}
    result = {
        "files": args.files,
        "repeat": args.repeat,
        "median_ms": {k: round(v, 2) for k, v in medians.items()},
        "busy_over_quiet": round(medians["busy"] / medians["quiet"], 2),
        "cold_over_busy": round(medians["cold"] / medians["busy"], 1),
        "eggs_over_quiet": round(medians["eggs"] / medians["quiet"], 2),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
