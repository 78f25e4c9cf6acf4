"""Real packages in real virtual environments, for the tests that need them.

Test packages are written as wheels (a zip with a dist-info, as any build
backend makes) and installed by pip into a venv; the example package is built
by its own build backend. Everything then runs in a subprocess of the venv's
interpreter.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import io
import json
import os
import shutil
import site
import socket
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PIP_ENV = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}


def outer_site_dirs() -> list[str]:
    """The site directories of the interpreter running the tests, in its order.

    Those of a venv (uv's too) or of the system interpreter alike: a venv made
    with ``--system-site-packages`` would see the *base* interpreter's instead,
    which is not where a user who works in a venv installed torch and the rest.
    """
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]


def script(name: str) -> str | None:
    """A console script of the interpreter running the tests (``torchrun``, ``ray``...).

    Looked up in that interpreter's scripts directory first, so that a venv's
    python used without activating the venv still finds the venv's scripts,
    then on PATH (a system tool); None when there is none.
    """
    scripts = Path(sysconfig.get_path("scripts"))
    for directory in (scripts, Path(sys.executable).parent):
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def require_script(name: str, install: str) -> str:
    """:func:`script`, or skip the test saying what to install."""
    import pytest

    found = script(name)
    if found is None:
        pytest.skip(f"{name} is not installed for {sys.executable} (pip install {install})")
    return found


#: How to install each optional library some tests need (``@pytest.mark.needs(...)``).
INSTALL = {
    "bitsandbytes": "pip install 'plugin-registry[bitsandbytes]'",
    "deepspeed": "DS_BUILD_OPS=0 pip install --no-build-isolation 'deepspeed>=0.16' (after torch)",
    "safetensors": "pip install 'plugin-registry[safetensors]'",
    "mpi4py": "apt-get install libopenmpi-dev, then pip install 'plugin-registry[mpi]'",
    "lightning": "pip install 'plugin-registry[lightning]'",
    "accelerate": "pip install 'plugin-registry[accelerate]'",
    "jsonargparse": "pip install 'plugin-registry[lightning-cli]'",
    "ray": "pip install 'plugin-registry[ray]'",
    "s3fs": "pip install 'plugin-registry[s3]'",
    "moto": "pip install 'moto[server]'",
    "importlinter": "pip install import-linter",
    "hypothesis": "pip install hypothesis",
    "pypiserver": "pip install pypiserver",
    "twine": "pip install twine",
}


def missing_library(*modules: str) -> str | None:
    """Why a test that needs ``modules`` cannot run here (with the install command), or None."""
    import importlib.util

    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            how = INSTALL.get(module.partition(".")[0], f"pip install {module}")
            return f"{module} is not installed for {sys.executable}: {how} (bash .ci/setup does)"
    return None


def skip_unless_installed(*modules: str) -> None:
    """Skip the running test, with the install command, where a library is missing."""
    import pytest

    reason = missing_library(*modules)
    if reason is not None:
        pytest.skip(reason)


def raises_within(seconds: float, call: Any, fifos: tuple[Path, ...] = ()) -> BaseException | None:
    """What ``call()`` raised (None if it returned), failing the test if it takes longer.

    A reader blocked on a FIFO is released (a writer opens and closes each of
    ``fifos``) so that a hang fails the test instead of stalling the suite.
    """
    import threading

    import pytest

    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for fifo in fifos:
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(30)
        pytest.fail(f"still blocked after {seconds} s (a FIFO read as a file?)")
    return outcome[0]


#: torchrun through the interpreter running the tests: no console script on PATH needed.
TORCHRUN = (sys.executable, "-m", "torch.distributed.run")


def wait_for_http(
    url: str, proc: subprocess.Popen[bytes], what: str, log: Path | None = None
) -> None:
    """Until ``url`` answers; RuntimeError (with ``log``) if ``proc`` exits or 60 s pass."""
    import time
    import urllib.request

    def tail() -> str:
        return f": {log.read_text(errors='replace')[-4000:]}" if log is not None else ""

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before it answered{tail()}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{what} did not answer at {url} within 60 s{tail()}")


def free_port() -> int:
    """A TCP port nobody listens on right now (for a rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_wheel(
    dest: Path,
    dist: str,
    version: str,
    files: Mapping[str, str],
    entry_points: str,
    requires: tuple[str, ...] = (),
) -> Path:
    """A pure-Python wheel holding ``files`` and an ``entry_points.txt``."""
    norm = dist.replace("-", "_")
    info = f"{norm}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    content = {
        **{path: textwrap.dedent(src).lstrip() for path, src in files.items()},
        f"{info}/METADATA": metadata,
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
        f"{info}/entry_points.txt": textwrap.dedent(entry_points).lstrip(),
    }
    rows = []
    for path, text in content.items():
        digest = hashlib.sha256(text.encode()).digest()
        b64 = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        rows.append([path, f"sha256={b64}", str(len(text.encode()))])
    rows.append([f"{info}/RECORD", "", ""])
    record = io.StringIO()
    csv.writer(record, lineterminator="\n").writerows(rows)
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / f"{norm}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in content.items():
            zf.writestr(path, text)
        zf.writestr(f"{info}/RECORD", record.getvalue())
    return wheel


def build_project_wheel(project: Path, dest: Path) -> Path:
    """Build ``project`` with its own build backend (no isolation, no index)."""
    before = set(dest.glob("*.whl")) if dest.exists() else set()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(dest),
            str(project),
        ],
        check=True,
        env={**os.environ, **PIP_ENV},
    )
    (built,) = set(dest.glob("*.whl")) - before
    return built


class Venv:
    """A fresh virtual environment that sees the packages of the interpreter running pytest.

    A ``.pth`` file adds that interpreter's site directories (with their own
    ``.pth`` files: editable installs) after the venv's own site-packages, so a
    test pays only for what it installs and what it installs wins. Not
    ``--system-site-packages``: from inside a venv that lends the *base*
    interpreter's packages, not the venv's.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
        self.python = str(path / "bin" / "python")
        purelib = subprocess.run(
            [self.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        # Named to sort last: the venv's own .pth files (what a test installs) run first.
        (Path(purelib) / "zzz_outer_environment.pth").write_text(
            "import site; " + "; ".join(f"site.addsitedir({d!r})" for d in outer_site_dirs()) + "\n"
        )
        # Outside the venv and the working directory: both are on sys.path
        # (as site-packages' parent and as ''), and writing the cache into
        # either would change the mtimes the cache is keyed on.
        self.cache_dir = path.parent / f"{path.name}-record-cache"
        self.cwd = path.parent / f"{path.name}-cwd"
        self.cwd.mkdir(exist_ok=True)
        self.site = Path(
            self.run("import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
        )

    def pip(self, *args: str) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "--python", self.python, *args, "-q"],
            capture_output=True,
            text=True,
            env={**os.environ, **PIP_ENV},
        )
        if proc.returncode != 0:
            raise RuntimeError(f"pip {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")

    def install(self, *wheels: Path | str) -> None:
        self.pip("install", "--no-deps", "--no-index", "--no-build-isolation", *map(str, wheels))

    def uninstall(self, *names: str) -> None:
        self.pip("uninstall", "-y", *names)

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("PLUGIN_REGISTRY_") and k != "PYTHONPATH"
        }
        env["PLUGIN_REGISTRY_CACHE_DIR"] = str(self.cache_dir)
        env.update(extra)
        return env

    def run(
        self, code: str, *, check: bool = True, args: tuple[str, ...] = (), **env: str
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.python, "-c", textwrap.dedent(code), *args],
            capture_output=True,
            text=True,
            env=self.env(**env),
            cwd=self.cwd,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def json(self, code: str, **env: str) -> Any:
        """Run ``code``, which prints one JSON document last."""
        out = self.run(code, **env).stdout.strip().splitlines()
        return json.loads(out[-1])

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.python, "-m", "plugin_registry.cli", *args],
            capture_output=True,
            text=True,
            env=self.env(**env),
            cwd=self.cwd,
        )
