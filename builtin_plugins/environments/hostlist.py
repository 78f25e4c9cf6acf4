"""SLURM host lists: ``node[01-03,7],gpu-[1-2]-x,login`` -> every host, in order.

The text comes from the environment, so it is bounded before anything is
expanded: numbers are ASCII digits (at most :data:`MAX_DIGITS`), a list names
at most :data:`MAX_HOSTS` hosts (counted from the ranges, not by expanding
them), and :func:`first_host` reads the first host without expanding the rest.
Every error names the variable it came from.
"""

from __future__ import annotations

import itertools
import math
import re

from plugin_registry.errors import ClusterEnvironmentError

#: The most hosts (and tasks-per-node entries) one list may name.
MAX_HOSTS = 100_000
#: The most digits one number of a range may have.
MAX_DIGITS = 9
_RANGE = re.compile(r"^([0-9]+)(?:-([0-9]+))?$", re.ASCII)


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _split_top_level(text: str, variable: str) -> list[str]:
    """Split on commas (and spaces) that are outside brackets."""
    items: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "[":
            depth += 1
            if depth > 1:
                raise ClusterEnvironmentError(
                    f"nested '[' in host list {variable}={_shown(text)}", reason="invalid-variable"
                )
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ClusterEnvironmentError(
                    f"unbalanced ']' in host list {variable}={_shown(text)}",
                    reason="invalid-variable",
                )
        if ch in ", " and depth == 0:
            if current:
                items.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth != 0:
        raise ClusterEnvironmentError(
            f"unbalanced '[' in host list {variable}={_shown(text)}", reason="invalid-variable"
        )
    if current:
        items.append("".join(current))
    return items


def _ranges(body: str, text: str, variable: str) -> list[tuple[int, int, int]]:
    """``(low, high, zero-padded width)`` for each range of one bracket."""
    out: list[tuple[int, int, int]] = []
    for part in body.split(","):
        m = _RANGE.match(part.strip())
        if not m:
            raise ClusterEnvironmentError(
                f"bad range {_shown(part)} in host list {variable}={_shown(text)}: expected "
                "ASCII digits such as 1-4 or 07",
                reason="invalid-variable",
            )
        lo_text, hi_text = m.group(1), m.group(2) or m.group(1)
        if max(len(lo_text), len(hi_text)) > MAX_DIGITS:
            raise ClusterEnvironmentError(
                f"range {_shown(part)} in host list {variable}={_shown(text)} has numbers of "
                f"more than {MAX_DIGITS} digits",
                reason="invalid-variable",
            )
        lo, hi = int(lo_text), int(hi_text)
        if hi < lo:
            raise ClusterEnvironmentError(
                f"descending range {_shown(part)} in host list {variable}={_shown(text)}",
                reason="invalid-variable",
            )
        width = len(lo_text) if lo_text.startswith("0") and len(lo_text) > 1 else 0
        out.append((lo, hi, width))
    return out


def _pieces(item: str, text: str, variable: str) -> list[str | list[tuple[int, int, int]]]:
    return [
        _ranges(p[1:-1], text, variable) if p.startswith("[") else p
        for p in re.split(r"(\[[^\]]*\])", item)
        if p
    ]


def _values(ranges: list[tuple[int, int, int]]) -> list[str]:
    return [str(n).zfill(width) for lo, hi, width in ranges for n in range(lo, hi + 1)]


def count_hosts(text: str, variable: str = "SLURM_NODELIST") -> int:
    """How many hosts ``text`` names, computed from the ranges."""
    total = 0
    for item in _split_top_level(text.strip(), variable):
        sizes = [
            sum(hi - lo + 1 for lo, hi, _ in piece)
            for piece in _pieces(item, text, variable)
            if isinstance(piece, list)
        ]
        total += math.prod(sizes)
    return total


def first_host(text: str, variable: str = "SLURM_NODELIST") -> str:
    """The first host ``text`` names, without expanding the others."""
    items = _split_top_level(text.strip(), variable)
    if not items:
        raise ClusterEnvironmentError(f"{variable} names no host", reason="invalid-variable")
    pieces = _pieces(items[0], text, variable)
    return "".join(
        piece if isinstance(piece, str) else str(piece[0][0]).zfill(piece[0][2]) for piece in pieces
    )


def expand_hostlist(text: str, variable: str = "SLURM_NODELIST") -> list[str]:
    """Every host named by a SLURM host-list expression, in order.

    Supports comma- and space-separated lists, ranges with leading zeros
    (``01-10``), several ranges in one bracket (``[1-3,7]``) and several
    bracket groups in one name (``rack[1-2]-n[01-02]``, expanded in order).
    A list of more than :data:`MAX_HOSTS` hosts is an error.
    """
    total = count_hosts(text, variable)
    if total > MAX_HOSTS:
        raise ClusterEnvironmentError(
            f"{variable} names {total} hosts, more than the {MAX_HOSTS} a job may have: "
            f"{_shown(text)}",
            reason="invalid-variable",
        )
    hosts: list[str] = []
    for item in _split_top_level(text.strip(), variable):
        choices = [[p] if isinstance(p, str) else _values(p) for p in _pieces(item, text, variable)]
        hosts.extend("".join(combo) for combo in itertools.product(*choices))
    return hosts


def tasks_per_node(text: str, variable: str = "SLURM_TASKS_PER_NODE") -> list[int]:
    """Expand ``SLURM_TASKS_PER_NODE`` (``2(x3),1``) to one count per node."""
    parsed: list[tuple[int, int]] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*([0-9]{1,9})(?:\(x([0-9]{1,9})\))?\s*", part, re.ASCII)
        if not m:
            raise ClusterEnvironmentError(
                f"{variable}={_shown(text)} is not of the form '2(x3),1'; is this process "
                "started by srun?",
                reason="invalid-variable",
            )
        parsed.append((int(m.group(1)), int(m.group(2) or 1)))
    nodes = sum(repeat for _, repeat in parsed)
    if nodes > MAX_HOSTS:
        raise ClusterEnvironmentError(
            f"{variable}={_shown(text)} describes {nodes} nodes, more than the {MAX_HOSTS} a "
            "job may have",
            reason="invalid-variable",
        )
    return [count for count, repeat in parsed for _ in range(repeat)]
