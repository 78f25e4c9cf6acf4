"""The project's own wheel installs into a fresh venv and works from there."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests._support.support import REPO, Venv, build_project_wheel


def test_wheel_installs_and_lists(tmp_path: Path) -> None:
    built = build_project_wheel(REPO, tmp_path / "dist")
    assert built.name.startswith("plugin_registry-")
    venv = Venv(tmp_path / "venv")
    venv.install(built)
    data = venv.json(
        """
        import json, importlib.resources, importlib_metadata, plugin_registry
        dist = importlib_metadata.distribution("plugin-registry")
        print(json.dumps({
            "file": plugin_registry.__file__,
            "typed": importlib.resources.files("plugin_registry").joinpath("py.typed").is_file(),
            "eps": [ep.value for ep in dist.entry_points.select(group="plugin_registry")],
            "script": [ep.value for ep in dist.entry_points.select(group="console_scripts")],
            "requires_python": dist.metadata["Requires-Python"],
        }))
        """
    )
    assert data["file"].startswith(str(venv.site)), "the venv's copy must win"
    assert data["typed"]
    assert data["eps"] == ["builtin_plugins.registration"]
    assert data["script"] == ["plugin_registry.cli:main"]
    assert data["requires_python"] == ">=3.10"
    proc = subprocess.run(
        [str(venv.path / "bin" / "plugin-registry"), "list", "--json"],
        capture_output=True,
        text=True,
        env=venv.env(),
    )
    assert proc.returncode == 0, proc.stderr
