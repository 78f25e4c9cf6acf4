"""What ``list`` and ``show`` print: tables that fit the width, answers that read as answers.

Names never break across lines (a column holding them is never wrapped); a
long fix (an install command) leaves the row for a numbered footnote under the
table; parametrised names show their choices on one line of the summary.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from plugin_registry._text import markup as escape
from plugin_registry.kinds import KINDS, spec
from plugin_registry.kinds.precision import OWN_PRECISION_FAMILIES
from plugin_registry.records import PluginInfo, Problem
from plugin_registry.requirements import Unmet, check


def requirements_of(record: PluginInfo) -> Unmet:
    """Why the record is unavailable, structured (met when it is available)."""
    if record.available:
        return Unmet()
    found = check(record.requires, record.install_hint)
    # A record made unavailable elsewhere than by its requirements keeps its reason.
    return found if found.reasons else Unmet((record.unavailable_reason,), ("unavailable",))


def _summary_cell(record: PluginInfo) -> str:
    lines = [
        escape(f"{key}: {', '.join(values)}") for key, values in record.name_parameters.items()
    ]
    if record.aliases:
        lines.append(escape(f"also: {', '.join(record.aliases)}"))
    if record.summary:
        lines.append(escape(record.summary))
    return "\n".join(lines)


def list_tables(console: Any, records: Sequence[PluginInfo], problems: Sequence[Problem]) -> None:
    """One table per kind, then the problems; each table fits ``console.width``."""
    from rich.table import Table

    for kind in KINDS:
        of_kind = [r for r in records if r.kind == kind]
        if not of_kind:
            continue
        table = Table(title=spec(kind).title, title_justify="left", show_edge=False, expand=False)
        table.add_column("name", no_wrap=True)
        table.add_column("provider", no_wrap=True)
        table.add_column("requires", no_wrap=True)
        table.add_column("summary", ratio=1, min_width=16)
        # One footnote per distinct reason and fix (the XLA plugins share theirs).
        notes: dict[str, int] = {}
        for record in of_kind:
            unmet = requirements_of(record)
            if unmet.reasons:
                note = "; ".join(unmet.reasons) + (f". To fix: {unmet.fix}" if unmet.fix else "")
                number = notes.setdefault(note, len(notes) + 1)
                word = unmet.short[0].partition(":")[0].split()[0]
                status = f"[yellow]{escape(word)} [{number}][/yellow]"
            else:
                status = "[green]met[/green]"
            table.add_row(
                escape(record.name),
                escape(record.distribution or "-"),
                status,
                _summary_cell(record),
            )
        console.print(table)
        for note, number in notes.items():
            console.print(escape(f"[{number}] {note}"))
        console.print()
    if not records:
        console.print("No plugins found: install a plugin package, or see 'plugin-registry doctor'")
    if problems:
        table = Table(title="Problems", title_justify="left")
        table.add_column("severity", no_wrap=True)
        table.add_column("package", no_wrap=True)
        table.add_column("entry point")
        table.add_column("reason", ratio=1)
        for p in problems:
            colour = "red" if p.severity == "error" else "yellow"
            table.add_row(
                f"[{colour}]{'broken' if p.severity == 'error' else p.severity}[/{colour}]",
                escape(p.distribution or "-"),
                escape(p.entry_point),
                escape(p.reason),
            )
        console.print(table)
    console.print(
        escape(
            "requires: 'met' means the libraries a plugin declares are installed; "
            "'plugin-registry doctor' imports each plugin, 'plugin-registry show NAME' "
            "tells how to use one."
        ),
        style="dim",
    )


def show_lines(record: PluginInfo, requested: str, parameters: Mapping[str, str]) -> list[str]:
    """``show NAME``: what it is, how to use it, its parameters, its status and fix.

    Lines indented by four spaces are code: the caller must not wrap them.
    """
    kind_title = spec(record.kind).slot
    provider = record.provider
    lines = [f"{requested}: a {kind_title} plugin from {provider}"]
    if record.summary:
        lines.append(f"  {record.summary}")
    if record.name_parameters:
        fixed = ", ".join(f"{k}={v!r}" for k, v in parameters.items())
        with_ = f", with {fixed}" if fixed else ""
        lines.append(f"  (one name of the record {record.name!r}{with_})")
    lines += ["", "Use it"]
    lines.append(f'  Python:     pr.load("{requested}")')
    flag = f"--precision {requested}" if record.kind == "precision" else f"--plugin {requested}"
    lines.append(f"  CLI:        plugin-registry resolve {flag}")
    lines.append("  Lightning:")
    lines.append("    from plugin_registry.lightning import Trainer  # or Fabric")
    own = [s for s in record.strategies if s in OWN_PRECISION_FAMILIES]
    strategy = f'strategy="{own[0]}", ' if own else ""
    lines.append(f'    Trainer({strategy}plugins=["{requested}"])')
    defaults = {**record.parameters, **parameters}
    lines += ["", "Parameters"]
    for key, value in defaults.items():
        how = "fixed by the name" if key in parameters else "default"
        lines.append(f"  {key} = {json.dumps(value)}  ({how})")
    target = record.target.rpartition(":")[2]
    lines.append(f'  and any keyword argument of {target}: pr.load("{requested}", name=value)')
    if len(record.names()) > 1:
        lines += ["", f"Other names: {', '.join(n for n in record.names() if n != requested)}"]
    lines += ["", "Where it runs"]
    lines.append(f"  accelerators: {', '.join(record.accelerators)}")
    if record.strategies:
        lines.append(f"  strategies: {', '.join(record.strategies)}")
    if record.constraints:
        lines.append(
            "  device constraints: " + ", ".join(f"{k} {v}" for k, v in record.constraints.items())
        )
    if record.provides:
        lines.append(f"  provides: {', '.join(record.provides)}")
    lines.append(f"  priority: {record.priority}")
    unmet = requirements_of(record)
    lines += ["", "Status"]
    if record.requires:
        lines.append(f"  requires: {', '.join(record.requires)}")
    if unmet.reasons:
        lines.append(f"  unavailable: {'; '.join(unmet.reasons)}")
        if unmet.fix:
            lines.append(f"  to fix: {unmet.fix}")
    else:
        lines.append(
            "  available: its requirements are met (the code is imported on load; "
            "'plugin-registry doctor' imports every plugin to check)"
        )
    lines.append(f"  target: {record.target}")
    return lines
