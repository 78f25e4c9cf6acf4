"""The ``plugin-registry`` command: list, show, doctor, cache, hardware, resolve."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import shutil
import sys
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from plugin_registry import _capture
from plugin_registry._text import EncodedBuffer, one_line, printable
from plugin_registry.errors import PluginRegistryError, PluginWarning
from plugin_registry.kinds import KINDS
from plugin_registry.records import PluginInfo, Problem


def _registry(args: argparse.Namespace) -> Any:
    from plugin_registry.registry import Registry

    return Registry(
        cache=False if args.no_cache else None,
        autoload=False if args.disable_autoload else None,
    )


def _names(record: PluginInfo) -> list[str]:
    return record.names()


def _record_json(record: PluginInfo) -> dict[str, Any]:
    return {**record.to_dict(), "names": _names(record)}


class _Out(EncodedBuffer):
    """What a command prints, kept until it has finished, in the real stdout's encoding."""

    def __init__(self, encoding: str, tty: bool, width: int) -> None:
        super().__init__(encoding)
        self.tty = tty
        self.width = width

    def isatty(self) -> bool:
        return self.tty


def _width() -> int:
    """The width the running command writes for (set by :func:`main` on its buffer)."""
    return getattr(sys.stdout, "width", None) or 80


def _console() -> Any:
    from rich.console import Console

    out = sys.stdout
    tty = bool(getattr(out, "tty", False))
    # no-color.org: NO_COLOR set to anything but "" turns colour off, on a terminal too.
    return Console(
        file=out,
        soft_wrap=False,
        force_terminal=tty,
        no_color=not tty or bool(os.environ.get("NO_COLOR")),
        highlight=False,
        width=_width(),
    )


def output_width(tty: bool, environ: Mapping[str, str] | None = None) -> int:
    """The width tables are made for: the terminal's, else ``COLUMNS``, else 80."""
    environ = os.environ if environ is None else environ
    if tty:
        return shutil.get_terminal_size((80, 24)).columns
    text = environ.get("COLUMNS", "").strip()
    if text.isascii() and text.isdigit() and 20 <= int(text) <= 1000:
        return int(text)
    return 80


def cmd_list(args: argparse.Namespace) -> int:
    registry = _registry(args)
    records = registry.list_plugins(args.kind)
    problems: list[Problem] = registry.problems()
    if args.json:
        print(
            json.dumps(
                {
                    "plugins": [_record_json(r) for r in records],
                    "problems": [p.to_dict() for p in problems],
                    "skipped": registry.skipped(),
                },
                indent=2,
            )
        )
        return 0
    from plugin_registry.cli.listing import list_tables

    list_tables(_console(), records, problems)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from plugin_registry.errors import PluginNotFoundError

    registry = _registry(args)
    try:
        match = registry.find(args.name, args.kind)
    except PluginNotFoundError as exc:
        if exc.reason != "ambiguous":
            raise
        # The library's message says kind=...; on the command line it is --kind.
        forms = " or ".join(repr(s) for s in exc.suggestions)
        raise PluginNotFoundError(
            f"{exc.name!r} names plugins of several kinds; say which: {forms} (or add --kind KIND)",
            name=exc.name,
            providers=exc.providers,
            suggestions=exc.suggestions,
            reason="ambiguous",
        ) from None
    record = match.record
    data = {**_record_json(record), "requested_parameters": match.parameters}
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    from plugin_registry.cli.listing import show_lines

    requested = args.name.strip()
    if args.kind and "/" not in requested:
        requested = f"{args.kind}/{requested}"
    width = _width()
    for line in show_lines(record, requested, match.parameters):
        if line.startswith("    "):  # code: copied, not read
            print(one_line(line))
        else:
            _print_wrapped([line], width)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Exit 0 when nothing is broken (warnings and notes do not fail it), 1 on an error."""
    from plugin_registry.cli import doctor

    registry = _registry(args)
    report = doctor.run(registry, args.packages)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0 if report.ok else 1
    width = _width()
    lines = ["Registration modules (import time, each in a fresh interpreter)"]
    keys = sorted(report.import_times)
    pad = max((len(k) for k in keys), default=0)
    lines += [f"  {k.ljust(pad)}  {report.import_times[k] * 1000:7.1f} ms" for k in keys]
    sections = (("error", "Errors"), ("warning", "Warnings"), ("info", "Notes"))
    counts = {}
    for severity, title in sections:
        found = [f for f in report.findings if f.severity == severity]
        counts[severity] = len(found)
        if not found:
            continue
        lines += ["", f"{title} ({len(found)})"]
        for f in found:
            lines.append(f"  {f.subject}")
            lines.append(f"    {f.message}")
            if f.fix:
                lines.append(f"    fix: {f.fix}")
    verdict = (
        "exit 1: something is broken"
        if counts["error"]
        else "exit 0: nothing is broken (warnings and notes do not fail the doctor)"
    )
    lines += [
        "",
        f"{_count(counts['error'], 'error')}, {_count(counts['warning'], 'warning')}, "
        f"{_count(counts['info'], 'note')}; {verdict}",
    ]
    _print_wrapped(lines, width)
    return 0 if report.ok else 1


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _print_wrapped(lines: Sequence[str], width: int) -> None:
    """Each line wrapped to ``width``, continuation lines indented under the first."""
    import textwrap

    for line in lines:
        indent = " " * (len(line) - len(line.lstrip()) + 2)
        wrapped = textwrap.wrap(
            one_line(line),
            width,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        )
        print("\n".join(wrapped))


def cmd_cache(args: argparse.Namespace) -> int:
    from plugin_registry import cache

    if args.action == "clear":
        removed = cache.clear()
        print(f"removed {removed} cache file(s) from {cache.default_dir()}")
        return 0
    registry = _registry(args)
    registry.list_plugins()
    stats = registry.stats
    info = {
        "directory": str(cache.default_dir()),
        "enabled": registry.cache_enabled,
        "file": stats.cache_file,
        "last_listing": {
            "rescanned_entry_points": stats.scanned,
            "registration_modules_imported": stats.collected,
            "results_reused": stats.reused,
            "cache_written": stats.cache_written,
            "seconds": round(stats.seconds, 6),
        },
    }
    print(json.dumps(info, indent=2))
    return 0


def cmd_hardware(args: argparse.Namespace) -> int:
    from plugin_registry.resolver.hardware import detect_hardware

    hardware = detect_hardware(_registry(args))
    if args.json:
        print(json.dumps(hardware.to_dict(), indent=2))
        return 0
    lines = [hardware.summary()]
    for device in hardware.devices:
        props = ", ".join(f"{k}={v}" for k, v in device.properties.items())
        lines.append(
            f"  {device.label()}: {', '.join(device.dtypes)}" + (f"; {props}" if props else "")
        )
    lines.append(f"  CPU: {hardware.cpu_capability or 'unknown'}; {', '.join(hardware.cpu_dtypes)}")
    lines.extend(
        f"  {name}: {version or 'not installed'}"
        for name, version in sorted(hardware.libraries.items())
    )
    lines.extend(f"  problem: {problem}" for problem in hardware.problems)
    for line in lines:
        print(one_line(line))
    return 0


def cmd_resolve(args: argparse.Namespace) -> int:
    from plugin_registry.resolver.choosing import resolve

    notes: tuple[str, ...] = ()
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            resolution = _resolve(args, resolve)
            notes = resolution.notes
    finally:
        # A warning that is also a note of the resolution is printed with it: once.
        for seen in caught:
            if str(seen.message) not in notes:
                warnings.warn_explicit(seen.message, seen.category, seen.filename, seen.lineno)
    if args.write_lock:
        resolution.lock().write(args.write_lock)
    if args.json:
        print(json.dumps(resolution.to_dict(), indent=2))
    else:
        width = _width()
        print(resolution.explain(width, encoding=sys.stdout.encoding or "utf-8"), end="")
    return 0


def _hardware(args: argparse.Namespace) -> Any:
    """The hardware record to plan for (None: this machine), with this machine's
    libraries when asked."""
    if args.hardware is None:
        if args.libraries == "here":
            raise PluginRegistryError("--libraries here goes with --hardware FILE")
        return None
    from plugin_registry.machine import Hardware

    hardware = Hardware.load(args.hardware)
    if args.libraries == "here":
        from plugin_registry.resolver.hardware import installed_libraries

        hardware = hardware.with_libraries(installed_libraries(_registry(args)))
    return hardware


def _resolve(args: argparse.Namespace, resolve: Any) -> Any:
    from plugin_registry.resolver.settings import Settings

    return resolve(
        **{name: getattr(args, name) for name in Settings.FIELDS},
        plugins=args.plugin,
        hardware=_hardware(args),
        registry=_registry(args),
        lock=args.lock,
    )


def cmd_new(args: argparse.Namespace) -> int:
    from plugin_registry.scaffold import create

    root = create(args.name, args.dest, folder=args.folder)
    print(f"created {root}: pip install -e '{root}[test]', then plugin-registry doctor and pytest")
    return 0


class _Version(argparse.Action):
    """``--version``: the metadata is read only when asked (not on every command)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        import plugin_registry

        print(f"plugin-registry {plugin_registry.__version__}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plugin-registry",
        description="List, inspect and check the installed PyTorch training plugins.",
    )
    parser.add_argument(
        "--version", action=_Version, nargs=0, help="show the installed version and exit"
    )
    parser.add_argument("--no-cache", action="store_true", help="ignore the record cache")
    parser.add_argument(
        "--disable-autoload",
        action="store_true",
        help="load no third-party plugin package (as PLUGIN_REGISTRY_DISABLE_AUTOLOAD=1)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="list plugins by kind")
    p.add_argument("--kind", choices=KINDS)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("show", help="show one plugin record")
    p.add_argument("name", help="[kind/][distribution:]name")
    p.add_argument("--kind", choices=KINDS)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("doctor", help="import everything and report problems")
    p.add_argument(
        "packages", nargs="*", metavar="PACKAGE", help="check only these plugin packages"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)
    p = sub.add_parser("cache", help="inspect or clear the record cache")
    p.add_argument("action", choices=("info", "clear"))
    p.set_defaults(func=cmd_cache)
    p = sub.add_parser("hardware", help="show what the resolver detects on this machine")
    p.add_argument("--json", action="store_true", help="a record for resolve --hardware FILE")
    p.set_defaults(func=cmd_hardware)
    p = sub.add_parser(
        "resolve",
        help="choose the plugins for settings and explain why",
        description="Choose one precision, checkpoint IO and cluster environment plugin for "
        "Lightning-style settings, and show every candidate with its reasons.",
    )
    p.add_argument("--precision", help="e.g. bf16-mixed, 16, 32-true, or a plugin name")
    p.add_argument("--accelerator", default="auto", help="auto, cpu, cuda, gpu, mps, tpu, xla")
    p.add_argument("--strategy", default="auto", help="auto, ddp, fsdp, deepspeed, xla, ...")
    p.add_argument("--devices", default="auto", help="auto, a count, -1, or indices '0,1'")
    p.add_argument("--num-nodes", type=int, default=1)
    p.add_argument(
        "--plugin", action="append", default=[], metavar="NAME", help="name a plugin (repeat)"
    )
    p.add_argument("--hardware", metavar="FILE", help="plan for the machine this record describes")
    p.add_argument(
        "--libraries",
        choices=("record", "here"),
        default="record",
        help="with --hardware: judge the libraries the record lists (default), or the ones "
        "installed here (plan a machine you will install the same packages on)",
    )
    p.add_argument("--lock", metavar="FILE", help="reload the plugins of a lock; fail on change")
    p.add_argument("--write-lock", metavar="FILE", help="write the resolution's lock file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_resolve)
    p = sub.add_parser("new", help="create a plugin package from the template")
    p.add_argument("name", help="distribution name, e.g. acme-plugins")
    p.add_argument("--dest", default=".", help="existing parent directory (default: here)")
    p.add_argument("--folder", help="the package folder's name (default: NAME)")
    p.set_defaults(func=cmd_new)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit status: 0 done, 1 problems found (doctor), 2 an error.

    What the command prints is kept until it has finished and then written
    once, so code of a plugin that prints while the command runs cannot mix
    into it (that goes to stderr), and a ``--json`` output is always valid JSON.
    A closed pipe (``plugin-registry list | head -1``) is not an error, for
    every command: exit 0, nothing on stderr.
    """
    args = build_parser().parse_args(argv)
    # The listing shows broken packages itself; the warnings would repeat it.
    warnings.simplefilter("ignore", PluginWarning)
    real = sys.stdout
    if real is None:  # started with stdout closed (`>&-`): Python sets it to None
        return _closed_stdout()
    encoding = getattr(real, "encoding", None) or "utf-8"
    tty = bool(getattr(real, "isatty", lambda: False)())
    width = output_width(tty)
    out = _Out(encoding, tty, width)
    code = 2
    with _capture.captured(stderr=False) as stray:
        sys.stdout = out
        try:
            code = args.func(args)
        except PluginRegistryError as exc:
            sys.stderr.write(f"plugin-registry: error: {printable(exc)}\n")
            code = 2
        except OSError as exc:
            sys.stderr.write(
                f"plugin-registry: error: {printable(exc.strerror or exc)}"
                + (f": {printable(exc.filename)!r}" if exc.filename else "")
                + "\n"
            )
            code = 2
    if stray.text:
        sys.stderr.write(printable(stray.text))
    if stray.lost:
        sys.stderr.write(
            "plugin-registry: error: plugin code closed this process's stdout, which could "
            "not be reopened: the output is lost; `plugin-registry doctor` names the package\n"
        )
        code = 2
    return _emit(out.getvalue(), real, code)


def _emit(text: str, stream: Any, code: int) -> int:
    """Write the command's output; characters the stream cannot encode are escaped."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    data = text.encode(encoding, "backslashreplace")
    try:
        target = getattr(stream, "buffer", None)
        if target is not None:
            stream.flush()
            target.write(data)
        else:
            stream.write(data.decode(encoding))
        stream.flush()
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            return _closed_stdout() if exc.errno == errno.EBADF else _write_failed(exc)
        # The reader has gone (`| head`): not an error. Point stdout at devnull
        # so that the interpreter's own flush at exit does not fail again.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
        return 0
    return code


def _closed_stdout() -> int:
    if sys.stderr is not None:
        sys.stderr.write(
            "plugin-registry: error: standard output is closed, so nothing could be written; "
            "run the command with its output going somewhere (a terminal, a file, a pipe)\n"
        )
    return 2


def _write_failed(exc: OSError) -> int:
    if sys.stderr is not None:
        sys.stderr.write(f"plugin-registry: error: cannot write the output: {exc.strerror}\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
