"""Every python block of the user guide runs as written, against installed packages."""

from __future__ import annotations

import re

import pytest

from tests.support import REPO, Venv

GUIDE = REPO / "docs" / "user-guide.md"
BLOCKS = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)


def test_the_guide_has_examples() -> None:
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_guide_block_runs(good_venv: Venv, index: int) -> None:
    good_venv.run(BLOCKS[index])
