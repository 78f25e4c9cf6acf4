"""The per-package limits bound what one package costs everyone else's lookups.

Every lookup reads every cached record and indexes every name, so a package that
declares 1,000 records of 1,024 names each (within the per-record limits) made a
warm ``pr.get("torch")`` take ~10 s and 1.2 GB. The package-wide limits
(records.py) cut such a package off; the largest package they admit costs a warm
lookup in a fresh interpreter at most a few times the memory of one without it.
Time is measured side by side in benchmarks/bench_package_limits.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import plugin_registry as pr
from plugin_registry.records import (
    MAX_NAMES_PER_PACKAGE,
    MAX_PARAMETER_ITEMS_PER_PACKAGE,
    MAX_RECORD_BYTES_PER_PACKAGE,
    MAX_RECORDS_PER_PACKAGE,
)
from plugin_registry.registry import Registry
from tests._support import limits_package
from tests._support.support import REPO

_PEAK = """
import json, sys, tracemalloc
tracemalloc.start()
import plugin_registry as pr
pr.get("torch")
print(json.dumps({"peak": tracemalloc.get_traced_memory()[1],
                  "collected": pr.default_registry().stats.collected}))
"""


def _records(registry: Registry) -> list[pr.PluginInfo]:
    return [r for r in registry.list_plugins() if r.distribution == limits_package.DISTRIBUTION]


def _problems(registry: Registry) -> list[str]:
    return [p.reason for p in registry.problems() if p.distribution == limits_package.DISTRIBUTION]


def test_the_largest_package_within_the_limits_is_accepted_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits_package.install(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry(cache=False)
    records = _records(registry)
    assert _problems(registry) == []
    assert len(records) == MAX_RECORDS_PER_PACKAGE
    assert sum(len(r.names()) for r in records) == MAX_NAMES_PER_PACKAGE
    assert sum(len(json.dumps(r.to_dict())) for r in records) == MAX_RECORD_BYTES_PER_PACKAGE
    assert sum(len(r.parameters["v"]) + 2 for r in records) == MAX_PARAMETER_ITEMS_PER_PACKAGE
    assert registry.get("w0999-c3").name == "w0999-{a}"


@pytest.mark.parametrize(
    ("limit", "words"),
    [
        ("records", f"more than {MAX_RECORDS_PER_PACKAGE} records"),
        ("names", f"more than {MAX_NAMES_PER_PACKAGE} names"),
        ("values", f"more than {MAX_PARAMETER_ITEMS_PER_PACKAGE} parameter values"),
        ("bytes", "records of more than 1024 KiB as JSON"),
    ],
)
def test_one_past_a_package_limit_cuts_the_package_off_with_a_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: str, words: str
) -> None:
    limits_package.install(tmp_path, **{limit: 1})
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry(cache=False)
    with pytest.warns(pr.PluginWarning, match="the rest are ignored"):
        problems = _problems(registry)
    assert len(problems) == 1 and words in problems[0], problems
    assert "split the package" in problems[0]
    assert 0 < len(_records(registry)) <= MAX_RECORDS_PER_PACKAGE
    assert registry.get("torch").distribution == "plugin-registry"


def _peak(cache: Path, site: Path | None) -> int:
    """Peak traced memory of a warm ``pr.get("torch")`` in a fresh interpreter."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGIN_REGISTRY_")}
    env["PLUGIN_REGISTRY_CACHE_DIR"] = str(cache)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site or ""), str(REPO)]))
    env["PYTHONWARNINGS"] = "ignore"
    for _ in range(2):  # the first run writes the cache, the second reads it
        out = subprocess.run(
            [sys.executable, "-c", _PEAK],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        ).stdout
    result = json.loads(out.splitlines()[-1])
    assert result["collected"] == 0, result  # warm: every record came from the cache
    return int(result["peak"])


@pytest.mark.parametrize("package", ["largest-within-the-limits", "1000x1024-names"])
def test_a_package_costs_other_lookups_at_most_ten_times_the_memory(
    tmp_path: Path, package: str
) -> None:
    site = tmp_path / "site"
    if package == "largest-within-the-limits":
        limits_package.install(site, aged=True)
    else:
        # Within every per-record limit: 1,000 records of 1,024 names each (1.2 GB
        # and ~10 s for every lookup before the package limits).
        limits_package.install(site, aged=True, names=1000 * 1024 - MAX_NAMES_PER_PACKAGE)
    without = _peak(tmp_path / "cache-without", None)
    with_package = _peak(tmp_path / "cache-with", site)
    print(f"{package}: peak {with_package / 1e6:.1f} MB vs {without / 1e6:.1f} MB without")
    assert with_package <= 10 * without
