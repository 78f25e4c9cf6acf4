"""Real packages in real virtual environments, for the tests that need them.

Test packages are written as wheels (a zip with a dist-info, as any build
backend makes) and installed by pip into a venv; the example package is built
by its own build backend. Everything then runs in a subprocess of the venv's
interpreter.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PIP_ENV = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}


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
    """A fresh virtual environment that sees the outer one's packages.

    ``--system-site-packages`` lends it pluggy, torch and the rest, so a test
    pays only for what it installs; the venv's own site-packages comes first,
    so what a test installs wins over the outer environment.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        subprocess.run(
            [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(path)],
            check=True,
        )
        self.python = str(path / "bin" / "python")
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
