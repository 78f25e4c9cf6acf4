"""SLURM host lists: ``node[01-03,7],gpu-[1-2]-x,login`` -> every host, in order."""

from __future__ import annotations

import itertools
import re

from plugin_registry.kinds.cluster_environment import ClusterEnvironmentError

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def _split_top_level(text: str) -> list[str]:
    """Split on commas (and spaces) that are outside brackets."""
    items: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ClusterEnvironmentError(f"unbalanced ']' in host list {text!r}")
        if ch in ", " and depth == 0:
            if current:
                items.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth != 0:
        raise ClusterEnvironmentError(f"unbalanced '[' in host list {text!r}")
    if current:
        items.append("".join(current))
    return items


def _expand_ranges(body: str, text: str) -> list[str]:
    values: list[str] = []
    for part in body.split(","):
        m = _RANGE.match(part.strip())
        if not m:
            raise ClusterEnvironmentError(f"bad range {part!r} in host list {text!r}")
        lo_text, hi_text = m.group(1), m.group(2) or m.group(1)
        lo, hi = int(lo_text), int(hi_text)
        if hi < lo:
            raise ClusterEnvironmentError(f"descending range {part!r} in host list {text!r}")
        width = len(lo_text) if lo_text.startswith("0") and len(lo_text) > 1 else 0
        values.extend(str(n).zfill(width) for n in range(lo, hi + 1))
    return values


def expand_hostlist(text: str) -> list[str]:
    """Every host named by a SLURM host-list expression, in order.

    Supports comma- and space-separated lists, ranges with leading zeros
    (``01-10``), several ranges in one bracket (``[1-3,7]``) and several
    bracket groups in one name (``rack[1-2]-n[01-02]``, expanded in order).
    """
    hosts: list[str] = []
    for item in _split_top_level(text.strip()):
        pieces = re.split(r"(\[[^\]]*\])", item)
        choices = [_expand_ranges(p[1:-1], text) if p.startswith("[") else [p] for p in pieces if p]
        hosts.extend("".join(combo) for combo in itertools.product(*choices))
    return hosts


def tasks_per_node(text: str) -> list[int]:
    """Expand ``SLURM_TASKS_PER_NODE`` (``2(x3),1``) to one count per node."""
    counts: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)(?:\(x(\d+)\))?\s*", part)
        if not m:
            raise ClusterEnvironmentError(
                f"SLURM_TASKS_PER_NODE={text!r} is not of the form '2(x3),1'; is this process "
                "started by srun?"
            )
        counts.extend([int(m.group(1))] * int(m.group(2) or 1))
    return counts
