"""A package index as users meet it, before plugin-registry is on a public one.

A real index server (pypiserver) on loopback serves the built plugin-registry wheel,
a package made by ``plugin-registry new`` (both uploaded through the server's upload
API by twine) and the wheels they depend on; a fresh venv installs the plugin package
by name with plain ``pip install --index-url`` and nothing else (pip's configuration
files and the machine's find-links are switched off, the server has no fallback to
PyPI), and the generated package's own CI command (``bash ci.sh``) passes against it.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from plugin_registry.scaffold import create
from tests._support.support import PIP_ENV, REPO, build_project_wheel, free_port, wait_for_http

pytestmark = [pytest.mark.slow, pytest.mark.needs("pypiserver", "twine")]

DIST = "idx-plugins"


@dataclass
class Index:
    url: str  # the simple API, for --index-url
    wheels: dict[str, Path]  # what was uploaded, by distribution
    package: Path  # the generated package's source tree


def _pip_env(**extra: str) -> dict[str, str]:
    """Only what the command line says: no pip.conf, find-links or extra indexes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return {**env, **PIP_ENV, "PIP_CONFIG_FILE": os.devnull, **extra}


def _dependencies(dest: Path, *requirements: str) -> None:
    """The wheels the uploaded packages need, fetched the way this machine installs them.

    torch is pinned to the build installed here (a CPU wheel on this machine's disk);
    everything else resolves as ``pip install`` would resolve it here.
    """
    torch = importlib.metadata.version("torch")
    if "+cpu" not in torch:
        pytest.skip(f"torch {torch} is not a CPU build: the index would need several GB")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "-d", str(dest),
         f"torch=={torch}", *requirements],
        capture_output=True, text=True, env={**os.environ, **PIP_ENV},
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"pip download failed:\n{proc.stdout}\n{proc.stderr}")


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    root = tmp_path_factory.mktemp("index")
    built = root / "built"
    # Built from a copy: a build in the checkout leaves build/ and an egg-info there,
    # and an egg-info in the working directory is a second plugin-registry on sys.path.
    source = root / "plugin-registry"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", ".nox", "build", "dist", "*.egg-info", "__pycache__", "_build",
            ".*_cache", ".hypothesis",
        ),
    )  # fmt: skip
    wheels = {"plugin-registry": build_project_wheel(source, built)}
    package = create(DIST, root)
    wheels[DIST] = build_project_wheel(package, built)
    served = root / "packages"
    served.mkdir()
    # What the two packages and the generated package's CI (pytest, build, an isolated
    # setuptools build) need; pip download saves the two local wheels too: removed, as
    # they reach the index by upload.
    _dependencies(
        served, str(wheels["plugin-registry"]), f"{wheels[DIST]}[test]", "build",
        "setuptools>=77", "wheel",
    )  # fmt: skip
    for wheel in wheels.values():
        (served / wheel.name).unlink(missing_ok=True)

    port = free_port()
    log = root / "pypiserver.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "pypiserver", "run", "--host", "127.0.0.1",
             "--port", str(port), "-a", ".", "-P", ".", "--disable-fallback", str(served)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/simple/", server, "pypiserver", log)
        subprocess.run(
            [sys.executable, "-m", "twine", "upload", "--non-interactive",
             "--repository-url", f"{base}/", "-u", "tests", "-p", "tests",
             *map(str, wheels.values())],
            check=True, capture_output=True, env=_pip_env(),
        )  # fmt: skip
        yield Index(url=f"{base}/simple/", wheels=wheels, package=package)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def fresh(index: Index, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (its own pip, nothing else) with the plugin package installed by name."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-cache-dir",
         "--index-url", index.url, DIST],
        capture_output=True, text=True, env=_pip_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return venv


def test_the_uploaded_wheels_are_on_the_index(index: Index) -> None:
    for dist, wheel in index.wheels.items():
        with urllib.request.urlopen(f"{index.url}{dist}/", timeout=10) as page:
            assert wheel.name in page.read().decode(), f"{dist} was not uploaded"


def test_a_fresh_venv_installs_a_plugin_package_and_plugin_registry_by_name(
    index: Index, fresh: Path
) -> None:
    python = str(fresh / "bin" / "python")
    where = subprocess.run(
        [python, "-c", "import json, importlib.metadata as m, plugin_registry as p; "
         "print(json.dumps([m.version('plugin-registry'), m.version('idx-plugins'), "
         "p.__file__]))"],
        capture_output=True, text=True, check=True, cwd=fresh,
    )  # fmt: skip
    version, plugin_version, location = json.loads(where.stdout)
    assert version == importlib.metadata.version("plugin-registry")
    assert plugin_version == "0.1.0"
    assert location.startswith(str(fresh)), f"not the installed wheel: {location}"
    listing = subprocess.run(
        [str(fresh / "bin" / "plugin-registry"), "list", "--json"],
        capture_output=True,
        text=True,
        check=True,
        cwd=fresh,
    )
    names = {p["name"] for p in json.loads(listing.stdout)["plugins"]}
    assert {"idx-bf16", "idx-scheduler", "bf16-mixed", "slurm"} <= names


def test_the_generated_package_passes_its_own_ci_against_the_index(
    index: Index, fresh: Path
) -> None:
    bin_dir = str(fresh / "bin")
    proc = subprocess.run(
        ["bash", "ci.sh"],
        cwd=index.package,
        capture_output=True,
        text=True,
        timeout=900,
        env=_pip_env(
            PIP_INDEX_URL=index.url,
            PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            VIRTUAL_ENV=str(fresh),
            PYTHON=str(fresh / "bin" / "python"),
        ),
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert " passed" in proc.stdout
    built = sorted(p.name for p in (index.package / "dist").iterdir())
    assert any(n.endswith(".whl") for n in built) and any(n.endswith(".tar.gz") for n in built)
