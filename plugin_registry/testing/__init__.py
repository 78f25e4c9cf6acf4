"""Checks a plugin package runs in its own tests (pytest or any other runner).

::

    # tests/test_package.py of a plugin package
    from plugin_registry.testing import assert_valid_package

    def test_package_is_a_good_citizen():
        assert_valid_package("acme-plugins")

:func:`check_package` returns the problems as sentences, each with its fix:

* the distribution is installed and has an entry point in the
  ``plugin_registry`` group;
* its hooks return valid records (discovery's problems for it);
* its registration module is light: imported in a fresh interpreter it pulls
  in neither torch, numpy, Lightning, a library its records require nor a
  plugin target (what ``plugin-registry doctor`` checks for every package);
* every target imports and builds an instance of its kind's base class with
  the record's default parameters (each concrete name of a parametrised
  record). A record whose requirements are unmet here cannot be imported: it
  is named in a :class:`~plugin_registry.errors.PluginWarning`, or
  reported as a problem with ``require_all=True`` (for a CI that installs
  every library the package's plugins need).
"""

from __future__ import annotations

import warnings

from plugin_registry.errors import PluginRegistryError, PluginWarning
from plugin_registry.names import normalize_distribution
from plugin_registry.records import ENTRY_POINT_GROUP

__all__ = ["assert_valid_package", "check_package"]


def check_package(distribution: str, *, build: bool = True, require_all: bool = False) -> list[str]:
    """Every problem of the installed plugin package ``distribution``; empty when fine.

    ``require_all=True`` makes a plugin whose requirements are missing a problem
    (otherwise it is skipped with a :class:`~plugin_registry.errors.PluginWarning` naming it).
    """
    from plugin_registry.cli import doctor
    from plugin_registry.registry import Registry

    dist = normalize_distribution(distribution)
    # Only this package: no other package's fault is reported as its own.
    registry = Registry(allow=[f"{dist}:*"], enable=[dist], cache=False)
    refs = [r for r in registry.entry_points() if r.distribution == dist]
    if not refs:
        return [
            f"{dist}: no entry point in the {ENTRY_POINT_GROUP!r} group (is it installed?); "
            f"add [project.entry-points.{ENTRY_POINT_GROUP}] <name> = "
            '"<package>.registration" to its pyproject.toml'
        ]
    problems: list[str] = []
    report = doctor.run(registry)
    for finding in report.findings:
        if finding.severity == "error":
            fix = f" (fix: {finding.fix})" if finding.fix else ""
            problems.append(f"{finding.subject}: {finding.message}{fix}")
    records = [r for r in registry.list_plugins() if r.distribution == dist]
    if not records and not problems:
        problems.append(f"{dist}: its hooks declare no plugin")
    if build:
        skipped = [r for r in records if not r.available]
        for record in skipped:
            what = f"{record.kind}/{dist}:{record.name}"
            line = f"{what} was not imported: {record.unavailable_reason}"
            if require_all:
                problems.append(line)
            else:
                warnings.warn(
                    f"{line} (check_package(..., require_all=True) makes this a problem)",
                    PluginWarning,
                    stacklevel=2,
                )
        for record in records:
            if not record.available:
                continue
            for exp in record.expansions(aliases=False):
                spec = f"{record.kind}/{dist}:{exp.name}"
                try:
                    registry.load(spec)
                except PluginRegistryError as exc:
                    problems.append(f"{spec}: {exc}")
    return problems


def assert_valid_package(
    distribution: str, *, build: bool = True, require_all: bool = False
) -> None:
    """Raise AssertionError listing every problem :func:`check_package` finds."""
    problems = check_package(distribution, build=build, require_all=require_all)
    if problems:
        raise AssertionError(
            f"plugin package {distribution!r} has {len(problems)} problem(s):\n  - "
            + "\n  - ".join(problems)
        )
