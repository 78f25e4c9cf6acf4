"""What the largest package the per-package limits admit costs everyone else.

Side by side, in fresh interpreters, alternating: a warm ``pr.get("torch")`` (the
call timed, after ``import plugin_registry``) with and without the package of
tests/_support/limits_package.py installed (1,000 records, 4,096 names, 20,000 parameter
values, 1 MiB of records), and a cold ``plugin-registry list --json`` end to end
(with its output size). Target (issue 28, item 13): the warm lookup at most 10x
the one without the package; tests/test_package_limits.py holds the memory bound.
Run: ``python benchmarks/bench_package_limits.py [--repeat 9] [--check]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests._support import limits_package  # noqa: E402

_WARM = """
import time
import plugin_registry as pr
t0 = time.perf_counter()
pr.get("torch")
print(time.perf_counter() - t0, pr.default_registry().stats.collected)
"""


def _env(cache: Path, site: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGIN_REGISTRY_")}
    env["PLUGIN_REGISTRY_CACHE_DIR"] = str(cache)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site or ""), str(REPO)]))
    env["PYTHONWARNINGS"] = "ignore"
    return env


def warm(cache: Path, site: Path | None) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _WARM], env=_env(cache, site), capture_output=True, text=True,
        check=True,
    ).stdout.split()  # fmt: skip
    if out[-1] != "0":
        raise RuntimeError("the lookup collected a package: the cache was not warm")
    return float(out[0])


def cold_list(cache: Path, site: Path | None) -> tuple[float, int]:
    shutil.rmtree(cache, ignore_errors=True)
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "plugin_registry.cli", "list", "--json"],
        env=_env(cache, site), capture_output=True, check=True,
    ).stdout  # fmt: skip
    return time.perf_counter() - started, len(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        site = root / "site"
        limits_package.install(site, aged=True)
        caches = {"without": root / "cache-without", "with": root / "cache-with"}
        sites = {"without": None, "with": site}
        for label in caches:
            subprocess.run(
                [sys.executable, "-c", "import plugin_registry as pr; pr.get('torch')"],
                env=_env(caches[label], sites[label]), check=True,
            )  # fmt: skip
        times: dict[str, list[float]] = {"without": [], "with": []}
        for _ in range(args.repeat):
            for label in times:
                times[label].append(warm(caches[label], sites[label]))
        listing = {label: cold_list(root / f"cold-{label}", sites[label]) for label in sites}
    med = {label: statistics.median(v) for label, v in times.items()}
    ratio = med["with"] / med["without"]
    result = {
        "warm_get_ms": {k: round(v * 1000, 2) for k, v in med.items()},
        "warm_ratio": round(ratio, 2),
        "cold_list_json_s": {k: round(v[0], 2) for k, v in listing.items()},
        "cold_list_json_bytes": {k: v[1] for k, v in listing.items()},
    }
    print(json.dumps(result, indent=1))
    if args.check and ratio > 10:
        print(f"missed: the warm lookup took {ratio:.1f}x the one without the package")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
