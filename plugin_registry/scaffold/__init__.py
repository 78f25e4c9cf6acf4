"""``plugin-registry new NAME``: a plugin package, ready to test and publish.

The template (``plugin_registry/scaffold/template``) holds a precision, a checkpoint IO
and a cluster-environment plugin, their tests (using
:mod:`plugin_registry.testing`), packaging with the entry point, and a CI
workflow. Placeholders are :class:`string.Template` fields: ``$dist``
(``acme-plugins``), ``$module`` (``acme_plugins``), ``$prefix`` (``acme``) and
``$PREFIX`` (``ACME``). A ``.tmpl`` suffix is dropped from a rendered name.
"""

from __future__ import annotations

import re
import string
from importlib import resources
from pathlib import Path

from plugin_registry.errors import ScaffoldError as ScaffoldError

_DIST_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def fields(dist: str) -> dict[str, str]:
    """Template fields for a distribution name such as ``acme-plugins``."""
    if not _DIST_RE.match(dist):
        raise ScaffoldError(
            f"{dist!r} is not a package name this template takes: lowercase letters, digits "
            "and single dashes, starting with a letter (e.g. 'acme-plugins')"
        )
    prefix = dist.removesuffix("-plugins").split("-")[0]
    return {
        "dist": dist,
        "module": dist.replace("-", "_"),
        "prefix": prefix,
        "PREFIX": prefix.upper(),
    }


def create(dist: str, dest: str | Path) -> Path:
    """Render the template for ``dist`` into ``dest/<dist>``; return that directory."""
    values = fields(dist)
    root = Path(dest) / dist
    if root.exists():
        raise ScaffoldError(f"{root} exists; choose another destination or remove it")
    template = resources.files("plugin_registry.scaffold") / "template"
    with resources.as_file(template) as source:
        for path in sorted(Path(source).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            relative = path.relative_to(source).as_posix().replace("__module__", values["module"])
            # pyproject.toml.tmpl: tools must not take the template for a project file.
            relative = relative.removesuffix(".tmpl")
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            text = string.Template(path.read_text()).substitute(values)
            target.write_text(text)
    return root
