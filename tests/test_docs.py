"""Every ```python block of the docs runs as written, against installed packages.

Fragments that need more around them (a process group, say) are fenced ```py.
"""

from __future__ import annotations

import re

import pytest

from tests.support import REPO, Venv

PAGES = ("user-guide.md", "checkpoint-io.md", "environments.md", "precision.md")
BLOCKS = [
    block
    for page in PAGES
    for block in re.findall(r"```python\n(.*?)```", (REPO / "docs" / page).read_text(), flags=re.S)
]


def test_the_guide_has_examples() -> None:
    assert len(BLOCKS) >= 7


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_guide_block_runs(good_venv: Venv, index: int) -> None:
    good_venv.run(BLOCKS[index])
