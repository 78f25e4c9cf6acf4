from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._support import packages
from tests._support.support import REPO, Venv, build_project_wheel, missing_library


@pytest.fixture(autouse=True)
def _no_registry_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """In-process tests start from a clean policy and a private cache."""
    for key in list(os.environ):
        if key.startswith("PLUGIN_REGISTRY_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("PLUGIN_REGISTRY_CACHE_DIR", str(tmp_path / "record-cache"))


_LAUNCHER_PREFIXES = ("SLURM_", "LSB_", "JSM_", "OMPI_", "PMI_", "PMIX_", "TORCHELASTIC_", "PJRT_")
_LAUNCHER_NAMES = (
    "JOB_ID",
    "PE_HOSTFILE",
    "NSLOTS",
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "GROUP_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "NODE_RANK",
    "LOCAL_WORLD_SIZE",
)


def _is_launcher_variable(key: str) -> bool:
    return key.startswith(_LAUNCHER_PREFIXES) or key in _LAUNCHER_NAMES


@pytest.fixture(autouse=True)
def _launcher_variables_left_as_found() -> Iterator[None]:
    """What a test (or Lightning inside it) sets of MASTER_ADDR and the like is undone:
    left in os.environ, it reached every later test's launcher (SLURM exports the
    environment to the job) -- seen: MASTER_ADDR=localhost in a 2-node SLURM job."""
    before = {k: v for k, v in os.environ.items() if _is_launcher_variable(k)}
    yield
    for key in [k for k in os.environ if _is_launcher_variable(k)]:
        if key not in before:
            del os.environ[key]
    os.environ.update(before)


@pytest.fixture
def no_launcher_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No launcher's variables: a test sets exactly those it is about."""
    for key in list(os.environ):
        if _is_launcher_variable(key):
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels of the example package (built by its backend) and the test packages."""
    dest = tmp_path_factory.mktemp("wheelhouse")
    build_project_wheel(REPO / "examples" / "acme-plugins", dest)
    for name in packages.PACKAGES:
        packages.build(dest, name)
    return dest


def wheel(wheelhouse: Path, dist: str) -> Path:
    (found,) = wheelhouse.glob(f"{dist.replace('-', '_')}-*.whl")
    return found


@pytest.fixture(scope="session")
def good_venv(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Venv:
    """The example package and the well-formed test packages, except the conflicting one."""
    venv = Venv(tmp_path_factory.mktemp("good") / "venv")
    venv.install(*(wheel(wheelhouse, d) for d in ("acme-plugins", "multi-kind", "needs-missing")))
    return venv


@pytest.fixture(scope="session")
def broken_venv(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Venv:
    """The example package beside every broken package."""
    venv = Venv(tmp_path_factory.mktemp("broken") / "venv")
    venv.install(
        wheel(wheelhouse, "acme-plugins"), *(wheel(wheelhouse, d) for d in packages.BROKEN)
    )
    return venv


@pytest.fixture
def fresh_venv(tmp_path: Path) -> Iterator[Venv]:
    """An empty venv a test may change."""
    yield Venv(tmp_path / "venv")


#: Fixtures that build wheels or venvs, or start daemons: a test using one is slow.
SLOW_FIXTURES = frozenset(
    {"wheelhouse", "good_venv", "broken_venv", "fresh_venv", "slurm", "grid_engine"}
)
#: Modules that train with DeepSpeed/FSDP/bitsandbytes, start launchers or build packages.
SLOW_MODULES = frozenset(
    {
        "test_launchers.py",
        "test_deepspeed.py",
        "test_packaging.py",
        "test_trust_checkpoints.py",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark slow tests, so that ``pytest -m "not slow"`` is the inner loop (< 2 min).

    ``@pytest.mark.needs("bitsandbytes", ...)``: skipped, saying how to install what
    is missing, where one of those libraries is not installed.
    """
    for item in items:
        for marker in item.iter_markers("needs"):
            reason = missing_library(*marker.args)
            if reason is not None:
                item.add_marker(pytest.mark.skip(reason=reason))
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & SLOW_FIXTURES or item.path.name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("launcher") is not None:
            item.add_marker(pytest.mark.slow)
