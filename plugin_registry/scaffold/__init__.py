"""``plugin-registry new NAME``: a plugin package, ready to test and publish.

The template (``plugin_registry/scaffold/template``) holds a precision, a checkpoint IO
and a cluster-environment plugin, their tests (using
:mod:`plugin_registry.testing`), packaging with the entry point, and a CI
workflow. Placeholders are :class:`string.Template` fields: ``$dist``
(``acme-plugins``), ``$module`` (``acme_plugins``), ``$prefix`` (``acme``) and
``$PREFIX`` (``ACME``); the template's ``.py`` files stay valid Python (class
names carry no placeholder). A ``.tmpl`` suffix is dropped from a
rendered name. ``examples/acme-plugins`` in the repository is this template
rendered for ``acme-plugins`` (``python -m tests.test_template`` writes it
again; tests/test_template.py checks it is current).
"""

from __future__ import annotations

import re
import string
from importlib import resources
from pathlib import Path

from plugin_registry.errors import ConfigurationError

_DIST_RE = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*\Z")


def fields(dist: str) -> dict[str, str]:
    """Template fields for a distribution name such as ``acme-plugins``."""
    if not _DIST_RE.match(dist):
        raise ConfigurationError(
            f"{dist!r} is not a package name this template takes: lowercase letters, digits "
            "and single dashes, starting with a letter (e.g. 'acme-plugins')",
            subject="scaffold",
        )
    prefix = dist.removesuffix("-plugins").split("-")[0]
    return {
        "dist": dist,
        "module": dist.replace("-", "_"),
        "prefix": prefix,
        "PREFIX": prefix.upper(),
    }


def create(dist: str, dest: str | Path, *, folder: str | None = None) -> Path:
    """Render the template for ``dist`` into ``dest/<folder>`` (``folder`` defaults to
    ``dist``); return that directory.

    ``dest`` must be an existing directory: a mistyped path is an error, not a
    tree of new folders. The package folder itself must not exist yet.
    """
    values = fields(dist)
    parent = Path(dest)
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise ConfigurationError(
            f"destination {str(parent)!r} {what}; create it first or pass an existing "
            "directory (--dest)",
            subject="scaffold",
        )
    name = folder if folder is not None else dist
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ConfigurationError(
            f"folder {name!r} is not a folder name; give a name without '/'", subject="scaffold"
        )
    root = parent / name
    if root.exists():
        raise ConfigurationError(
            f"{root} exists; choose another destination or remove it", subject="scaffold"
        )
    for relative, text in render(values).items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root


def render(values: dict[str, str]) -> dict[str, str]:
    """Each file of the template rendered with ``values``: relative path -> text."""
    out: dict[str, str] = {}
    template = resources.files("plugin_registry.scaffold") / "template"
    with resources.as_file(template) as source:
        for path in sorted(Path(source).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            relative = path.relative_to(source).as_posix().replace("__module__", values["module"])
            # pyproject.toml.tmpl: tools must not take the template for a project file.
            out[relative.removesuffix(".tmpl")] = string.Template(path.read_text()).substitute(
                values
            )
    return out
