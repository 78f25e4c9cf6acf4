"""Listing speed against a bare entry-point scan, on synthetic installs.

For 100, 1,000 and 3,000 installed distributions (1 in 100 a plugin package,
half with console scripts, as a real site-packages), each measurement runs in
a fresh interpreter, timed inside it around the one call:

* ``scan``      importlib_metadata.entry_points(group="plugin_registry")
* ``stdlib``    importlib.metadata.entry_points(group=...), for reference
* ``cold``      Registry().list_plugins() with an empty cache directory
                (scan, import the registration modules, write the cache)
* ``cold+imp``  the same, counting the import of pluggy, importlib-metadata and
                packaging that a cold listing triggers (``scan`` pre-imports
                importlib-metadata, ``cold`` pre-imports the same set)
* ``warm``      ``pr.list_plugins()`` with the cache in place, after ``import
                plugin_registry as pr``: what a program that lists plugins pays, the
                registry's own modules (imported by the first call) included
* ``stevedore`` stevedore's warm entry-point cache, where stevedore is installed

Targets (issue 32): cold <= 1.2x scan at 1,000 distributions; warm >= 20x faster than
the scan at 1,000 and >= 40x at 3,000.
Run: ``python benchmarks/bench_listing.py [--repeat 9] [--check]``.
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

SIZES = (100, 1000, 3000)
PLUGIN_EVERY = 100

_SNIPPETS = {
    "scan": (
        "import importlib_metadata",
        "importlib_metadata.entry_points(group='plugin_registry')",
    ),
    "stdlib": (
        "import importlib.metadata",
        "importlib.metadata.entry_points(group='plugin_registry')",
    ),
    "cold": (
        "import plugin_registry, importlib_metadata, pluggy, packaging.requirements; "
        "from plugin_registry.registry import Registry; "
        "import plugin_registry.discovery, plugin_registry.requirements",
        "Registry().list_plugins()",
    ),
    "cold+imp": (
        "import plugin_registry; from plugin_registry.registry import Registry",
        "Registry().list_plugins()",
    ),
    "warm": ("import plugin_registry as pr", "pr.list_plugins()"),
    # For reference: stevedore's warm cache stats every dist-info's entry_points.txt.
    "stevedore": (
        "import stevedore._cache as c",
        "c.get_group_all('plugin_registry')",
    ),
}
try:
    import stevedore  # noqa: F401
except ImportError:
    del _SNIPPETS["stevedore"]

_TEMPLATE = """
import time
{setup}
t0 = time.perf_counter()
{call}
print(time.perf_counter() - t0)
"""


def make_tree(root: Path, n: int) -> Path:
    """A directory of ``n`` installed distributions, settled an hour ago."""
    tree = root / f"site-{n}"
    tree.mkdir(parents=True)
    (root / "cwd").mkdir(exist_ok=True)
    for i in range(n):
        name = f"synth{i:04d}"
        info = tree / f"{name}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        (info / "RECORD").write_text(f"{name}/__init__.py,,\n")
        (info / "INSTALLER").write_text("pip\n")
        pkg = tree / name
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
        sections = []
        if i % 2 == 0:
            sections.append(f"[console_scripts]\n{name} = {name}:main\n")
        if i % PLUGIN_EVERY == 0:
            sections.append(f"[plugin_registry]\n{name} = {name}.registration\n")
            (pkg / "registration.py").write_text(
                "from plugin_registry import PluginInfo, hookimpl\n\n"
                "@hookimpl\n"
                "def plugin_registry_checkpoint_io_plugins():\n"
                f"    return [PluginInfo(name='{name}-io', kind='checkpoint_io',\n"
                f"                       target='{name}.io:IO', requires=('torch>=2',))]\n"
            )
        if sections:
            (info / "entry_points.txt").write_text("\n".join(sections))
    settled = time.time() - 3600
    for path in (tree, root / "cwd", *tree.rglob("*")):
        os.utime(path, (settled, settled))
    return tree


def _env() -> dict[str, str]:
    """The environment of every measured interpreter: bytecode read and written, as an
    install leaves it (pip compiles it; PYTHONDONTWRITEBYTECODE, set on some machines,
    would have every run compile plugin_registry from source: 5-15 ms of each "warm")."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PLUGIN_REGISTRY_") and k != "PYTHONDONTWRITEBYTECODE"
    }


def measure(mode: str, tree: Path, cache_dir: Path) -> float:
    setup, call = _SNIPPETS[mode]
    env = _env()
    env["PYTHONPATH"] = str(tree)
    env["PLUGIN_REGISTRY_CACHE_DIR"] = str(cache_dir)
    env["XDG_CACHE_HOME"] = str(cache_dir)  # stevedore's
    proc = subprocess.run(
        [sys.executable, "-c", _TEMPLATE.format(setup=setup, call=call)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tree.parent / "cwd",  # on sys.path as '': nothing is written there
        check=True,
    )
    return float(proc.stdout.strip().splitlines()[-1])


def populate(tree: Path, cache_dir: Path) -> None:
    """Write the warm cache, and wait until it is trusted.

    A ``sys.path`` directory changed less than two seconds ago (a package just
    installed) makes the cache untrusted, and "warm" would measure a rescan.
    """
    probe = "from plugin_registry.registry import Registry; r = Registry(); r.list_plugins()"
    for _ in range(5):
        measure_code = f"{probe}; print(r.stats.scanned)"
        env = _env()
        env.update(PYTHONPATH=str(tree), PLUGIN_REGISTRY_CACHE_DIR=str(cache_dir))
        out = subprocess.run(
            [sys.executable, "-c", measure_code],
            capture_output=True,
            text=True,
            env=env,
            cwd=tree.parent / "cwd",
            check=True,
        ).stdout.split()
        if out[-1] == "False":
            return
        time.sleep(2.1)
    raise RuntimeError("the record cache never became trusted: is sys.path being written to?")


def run(repeat: int) -> dict[int, dict[str, float]]:
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n in SIZES:
            tree = make_tree(root, n)
            samples: dict[str, list[float]] = {m: [] for m in _SNIPPETS}
            warm_cache = root / "caches" / f"warm-{n}"
            populate(tree, warm_cache)
            if "stevedore" in _SNIPPETS:
                measure("stevedore", tree, warm_cache)  # populate stevedore's cache
            for i in range(repeat):  # interleaved, so drift hits every mode alike
                for mode in _SNIPPETS:
                    if mode.startswith("cold"):
                        cache_dir = root / "caches" / f"cold-{n}-{mode}-{i}"
                        shutil.rmtree(cache_dir, ignore_errors=True)
                    else:
                        cache_dir = warm_cache
                    samples[mode].append(measure(mode, tree, cache_dir))
            results[n] = {m: statistics.median(v) for m, v in samples.items()}
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    results = run(args.repeat)
    print(f"median of {args.repeat} fresh interpreters each; times in ms")
    print(
        f"{'dists':>6} {'scan':>8} {'stdlib':>8} {'cold':>8} {'cold+imp':>9} {'warm':>8}"
        f" {'stevedore':>10} {'cold/scan':>10} {'cold+imp/scan':>14} {'scan/warm':>10}"
        f" {'scan/stevedore':>15}"
    )
    ok = True
    targets = {1000: 20.0, 3000: 40.0}
    for n, r in results.items():
        cold_ratio = r["cold"] / r["scan"]
        cold_imp_ratio = r["cold+imp"] / r["scan"]
        warm_speedup = r["scan"] / r["warm"]
        stevedore = r.get("stevedore", float("nan"))
        print(
            f"{n:>6} {r['scan'] * 1e3:8.2f} {r['stdlib'] * 1e3:8.2f} {r['cold'] * 1e3:8.2f}"
            f" {r['cold+imp'] * 1e3:9.2f} {r['warm'] * 1e3:8.3f} {stevedore * 1e3:10.3f}"
            f" {cold_ratio:10.2f} {cold_imp_ratio:14.2f} {warm_speedup:10.1f}"
            f" {r['scan'] / stevedore:15.1f}"
        )
        if n == 1000 and cold_ratio > 1.2:
            ok = False
        if n in targets and warm_speedup < targets[n]:
            ok = False
    print(
        "targets (cold/scan <= 1.2 at 1,000; scan/warm >= 20 at 1,000, >= 40 at 3,000): "
        + ("met" if ok else "MISSED")
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({str(n): r for n, r in results.items()}, indent=2))
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    raise SystemExit(main())
