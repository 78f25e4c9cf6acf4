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


def _summary_cell(record: PluginInfo, width: int, ellipsis: str = "…") -> str:
    """At most two lines of ``width``: the choices of a parametrised name and the aliases,
    then the summary, each cut with ``…`` where the two do not fit (``plugin-registry show
    NAME`` has the whole of them)."""
    import textwrap

    parts = [f"{key}: {', '.join(values)}" for key, values in record.name_parameters.items()]
    if record.aliases:
        parts.append(f"also: {', '.join(record.aliases)}")
    head, summary = "; ".join(parts), record.summary
    joined = f"{head}. {summary}" if head and summary else head or summary
    lines = textwrap.wrap(joined, width, break_on_hyphens=False)
    if len(lines) <= 2:
        return "\n".join(lines)
    if head and summary:  # one line each
        return "\n".join(_one_line(text, width, ellipsis) for text in (head, summary))
    return f"{lines[0]}\n{_one_line(' '.join(lines[1:]), width, ellipsis)}"


def _one_line(text: str, width: int, ellipsis: str) -> str:
    if len(text) <= width:
        return text
    room = width - len(ellipsis)
    cut = text[:room].rsplit(" ", 1)[0] if " " in text[:room] else text[:room]
    return cut.rstrip(",;.") + ellipsis


def _kind_table(console: Any, kind: str, of_kind: Sequence[PluginInfo]) -> None:
    """One kind's table and its footnotes (see :func:`list_tables`)."""
    from rich.table import Table

    providers = sorted({r.provider for r in of_kind})
    title = spec(kind).title + (f" (from {providers[0]})" if len(providers) == 1 else "")
    # One footnote per distinct reason and fix (the XLA plugins share theirs); the
    # plugin's name carries its number.
    notes: dict[str, int] = {}
    names: list[str] = []
    marked: list[str] = []
    for record in of_kind:
        unmet = requirements_of(record)
        if unmet.reasons:
            note = "; ".join(unmet.reasons) + (f". To fix: {unmet.fix}" if unmet.fix else "")
            number = notes.setdefault(note, len(notes) + 1)
            names.append(f"{record.name} [{number}]")
            marked.append(f"{escape(record.name)} [yellow]\\[{number}][/yellow]")
        else:
            names.append(record.name)
            marked.append(escape(record.name))
    columns = [names]
    if len(providers) > 1:
        columns.append([r.distribution or "-" for r in of_kind])
    widths = [max(len(v) for v in values) for values in columns]
    summary_width = max(16, console.width - sum(widths) - 2 * len(columns))
    table = Table(
        title=escape(title),
        title_justify="left",
        box=None,
        show_header=False,
        pad_edge=False,
        padding=(0, 2, 0, 0),
    )
    for width in widths:
        table.add_column(no_wrap=True, min_width=width)
    table.add_column(width=summary_width)
    try:  # "…" where the output can show it (an ASCII terminal gets "...")
        ellipsis = "…" if "…".encode(console.encoding) else "..."
    except (UnicodeError, LookupError):
        ellipsis = "..."
    for i, record in enumerate(of_kind):
        cells = [marked[i], *(escape(values[i]) for values in columns[1:])]
        table.add_row(*cells, escape(_summary_cell(record, summary_width, ellipsis)))
    console.print(table)
    for note, number in notes.items():
        console.print(escape(f"[{number}] unavailable: {note}"))
    console.print()


def list_tables(console: Any, records: Sequence[PluginInfo], problems: Sequence[Problem]) -> None:
    """One table per kind, then the problems; each fits ``console.width``.

    Laid out for reading at 80 columns, as ``pip list`` and ``gh`` are: one or two
    lines a plugin, the summary given the width. The provider is named once, in the
    title, when one package provides every plugin of the kind, and in a column only
    when it varies; a plugin whose requirements are met shows nothing more, one that
    lacks them a footnote number after its name, the footnote the reason and the fix.
    """
    for kind in KINDS:
        of_kind = [r for r in records if r.kind == kind]
        if of_kind:
            _kind_table(console, kind, of_kind)
    if not records:
        console.print("No plugins found: install a plugin package, or see 'plugin-registry doctor'")
    if problems:
        from rich.table import Table

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
            "A plugin without a [note] has the libraries it declares; 'plugin-registry show NAME' "
            "tells all of it and how to use it, 'plugin-registry doctor' imports each plugin."
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
    lines += _where_it_runs(record)
    lines += _status(record)
    lines.append(f"  target: {record.target}")
    return lines


def _where_it_runs(record: PluginInfo) -> list[str]:
    lines: list[str] = []
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
    return lines


def _status(record: PluginInfo) -> list[str]:
    lines: list[str] = []
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
    return lines
