"""The largest plugin package the per-package limits admit, written into a site directory.

Every limit of ``plugin_registry.records`` at once: 1,000 records, 4,096 names,
20,000 parameter values and (with summaries filling the rest) just under 1 MiB of
records as JSON. tests/test_package_limits.py and benchmarks/bench_package_limits.py
measure what it costs everyone else's lookups.
"""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
import time
from pathlib import Path

DISTRIBUTION = "limits-worst"

_SOURCE = """
import json

from plugin_registry import PluginInfo, hookimpl
from plugin_registry.records import (
    MAX_NAMES_PER_PACKAGE, MAX_PARAMETER_ITEMS_PER_PACKAGE, MAX_RECORD_BYTES_PER_PACKAGE,
    MAX_RECORDS_PER_PACKAGE, MAX_TEXT_LENGTH,
)

EXTRA = {extra}


def _records():
    count = MAX_RECORDS_PER_PACKAGE + EXTRA.get("records", 0)
    names = MAX_NAMES_PER_PACKAGE + EXTRA.get("names", 0)
    values = MAX_PARAMETER_ITEMS_PER_PACKAGE + EXTRA.get("values", 0)
    base, more = divmod(names, count)  # choices per record
    per, more_values = divmod(values, count)  # the dict, the list and its items
    records = []
    for i in range(count):
        choices = [f"c{{j}}" for j in range(base + (i < more))]
        records.append(dict(
            name=f"w{{i:04d}}-{{{{a}}}}", kind="precision", target="limits_worst.p:P",
            name_parameters={{"a": choices}},
            parameters={{"v": list(range(per - 2 + (i < more_values)))}},
            summary="",
        ))
    # The rest of the byte budget as summaries (as the cache records them: with
    # the distribution and version discovery adds).
    def size(r):
        info = PluginInfo(**r)
        d = info.to_dict()
        d.update(distribution="limits-worst", version="1.0")
        return len(json.dumps(d))
    room = MAX_RECORD_BYTES_PER_PACKAGE + EXTRA.get("bytes", 0) - sum(size(r) for r in records)
    fill, rest = divmod(room, count)
    for i, r in enumerate(records):
        r["summary"] = "s" * min(MAX_TEXT_LENGTH, fill + (i < rest))
    return [PluginInfo(**r) for r in records]


@hookimpl
def plugin_registry_precision_plugins():
    return _records()
"""


def install(site: Path, *, version: str = "1.0", aged: bool = False, **extra: int) -> None:
    """Write the package into ``site`` (a directory on ``sys.path``); ``extra`` adds to a
    limit (``names=1``: one name too many). ``aged`` dates the files a minute back, so
    that the record cache trusts them at once (it re-collects files changed within
    the last seconds: a change could hide in their mtime's tick)."""
    (site / "limits_worst").mkdir(parents=True, exist_ok=True)
    (site / "limits_worst" / "__init__.py").write_text("")
    (site / "limits_worst" / "reg.py").write_text(textwrap.dedent(_SOURCE.format(extra=extra)))
    info = site / f"limits_worst-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {DISTRIBUTION}\nVersion: {version}\n"
    )
    (info / "entry_points.txt").write_text("[plugin_registry]\nplugins = limits_worst.reg\n")
    if aged:
        past = time.time() - 60
        for path in [*site.rglob("*"), site]:
            os.utime(path, (past, past))
    # An earlier install's module, imported in this process, must not stand in for this one.
    for module in [m for m in sys.modules if m.split(".")[0] == "limits_worst"]:
        del sys.modules[module]
    importlib.invalidate_caches()
