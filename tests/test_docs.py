"""Every ```python block of the docs runs as written, against installed packages.

Fragments that need more around them (a process group, say) are fenced ```py.
"""

from __future__ import annotations

import re

import pytest

from tests._support.support import REPO, Venv

PAGES = (
    "quickstart.md",
    "safety.md",
    "lightning.md",
    "accelerate.md",
    "user-guide.md",
    "checkpoint-io.md",
    "environments.md",
    "precision.md",
    "resolver.md",
    "plugin-authors.md",
)
BLOCKS = [
    block
    for page in PAGES
    for block in re.findall(r"```python\n(.*?)```", (REPO / "docs" / page).read_text(), flags=re.S)
]


def test_the_guide_has_examples() -> None:
    assert len(BLOCKS) >= 7


#: Optional libraries: a block that names one (a plugin of it, or an import) needs it.
OPTIONAL = ("bitsandbytes", "deepspeed", "safetensors", "accelerate")


@pytest.mark.parametrize(
    "index",
    [
        pytest.param(i, marks=pytest.mark.needs(*[lib for lib in OPTIONAL if lib in block]))
        for i, block in enumerate(BLOCKS)
    ],
)
def test_guide_block_runs(good_venv: Venv, index: int) -> None:
    good_venv.run(BLOCKS[index])


def test_quickstart_commands_run(good_venv: Venv) -> None:
    """Each `$ plugin-registry ...` line of the quick start, as pasted into a shell."""
    import shlex

    text = (REPO / "docs" / "quickstart.md").read_text()
    commands = [
        line[2:].split("  #")[0].strip()
        for line in text.splitlines()
        if line.startswith("$ plugin-registry")
    ]
    assert len(commands) >= 5
    for command in commands:
        args = shlex.split(command)[1:]
        args = [str(REPO / a) if a.startswith("docs/") else a for a in args]
        proc = good_venv.cli(*args)
        assert proc.returncode == 0, f"{command}: {proc.stdout}\n{proc.stderr}"
        assert proc.stdout.strip(), command


# -- explain() output in docs/resolver.md: regenerated and compared ---------------------

EXPLAIN_RE = re.compile(r"<!-- (explain|error): (resolve\(.*?\)) -->\n```text\n(.*?)```", re.S)
RESOLVER_PAGE = REPO / "docs" / "resolver.md"


def render(what: str, call: str) -> str:
    """The output a marked call produces (run from the repository root)."""
    import functools
    import warnings

    from plugin_registry.resolver import resolve
    from plugin_registry.resolver.preferences import Preferences

    namespace = {"resolve": functools.partial(resolve, preferences=Preferences())}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if what == "explain":
            return str(eval(call, namespace).explain(width=100))
        try:
            eval(call, namespace)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}\n"
    raise AssertionError(f"{call} did not fail")


def rewrite_resolver_page() -> None:
    text = RESOLVER_PAGE.read_text()

    def fill(match: re.Match[str]) -> str:
        what, call = match.group(1), match.group(2)
        return f"<!-- {what}: {call} -->\n```text\n{render(what, call)}```"

    RESOLVER_PAGE.write_text(EXPLAIN_RE.sub(fill, text))


@pytest.mark.usefixtures("no_launcher_env")
def test_resolver_page_shows_real_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    blocks = EXPLAIN_RE.findall(RESOLVER_PAGE.read_text())
    assert len(blocks) >= 4
    for what, call, shown in blocks:
        assert shown == render(what, call), (
            f"docs/resolver.md is stale for {call}; run `python -m tests.test_docs`"
        )


if __name__ == "__main__":
    import os

    os.chdir(REPO)
    rewrite_resolver_page()
