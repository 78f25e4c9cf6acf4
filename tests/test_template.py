"""`plugin-registry new` makes a package that installs, passes its own tests and the doctor."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from plugin_registry.scaffold import ScaffoldError, create
from tests.support import Venv, build_project_wheel


@pytest.mark.slow
def test_generated_package_installs_and_passes_its_tests(tmp_path: Path) -> None:
    root = create("zeta-plugins", tmp_path / "src")
    assert (root / ".github" / "workflows" / "ci.yml").exists()
    wheel = build_project_wheel(root, tmp_path / "dist")
    venv = Venv(tmp_path / "venv")
    venv.install(wheel)
    listed = venv.cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    for name in ("zeta-bf16", "zeta-io", "zeta-env"):
        assert f'"{name}"' in listed.stdout
    doctor = venv.cli("doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    # the package's own tests, run against the installed wheel (not the source tree)
    proc = subprocess.run(
        [venv.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests")],
        capture_output=True,
        text=True,
        env=venv.env(),
        cwd=venv.cwd,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 passed" in proc.stdout


def test_generated_package_is_what_the_template_says(tmp_path: Path) -> None:
    root = create("acme-vision-plugins", tmp_path)
    registration = (root / "acme_vision_plugins" / "registration.py").read_text()
    assert 'name="acme-bf16"' in registration
    assert 'target="acme_vision_plugins.precision:BF16Autocast"' in registration
    assert "$" not in registration
    pyproject = (root / "pyproject.toml").read_text()
    assert 'acme_vision_plugins = "acme_vision_plugins.registration"' in pyproject
    assert "${{ matrix.python }}" in (root / ".github" / "workflows" / "ci.yml").read_text()
    compile((root / "tests" / "test_plugins.py").read_text(), "test_plugins.py", "exec")


@pytest.mark.parametrize("bad", ["Acme", "acme_plugins", "-acme", "acme--x", "1acme"])
def test_bad_names_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ScaffoldError, match="not a package name"):
        create(bad, tmp_path)


def test_existing_destination_is_not_overwritten(tmp_path: Path) -> None:
    create("zeta-plugins", tmp_path)
    with pytest.raises(ScaffoldError, match="exists"):
        create("zeta-plugins", tmp_path)


def test_testing_helper_reports_each_broken_package(broken_venv: Venv) -> None:
    """check_package names the fault of every broken test package, and passes the example."""
    out = broken_venv.json(
        """
        import json
        from plugin_registry.testing import check_package
        names = ["acme-plugins", "broken-import", "broken-hook-raises", "broken-record",
                 "broken-target", "heavy-registration", "not-installed-at-all"]
        print(json.dumps({n: check_package(n) for n in names}))
        """
    )
    assert out["acme-plugins"] == []
    assert "failed to load" in " ".join(out["broken-import"])
    assert "raised ValueError: hook exploded" in " ".join(out["broken-hook-raises"])
    assert "is not of the form 'package.module:attribute'" in " ".join(out["broken-record"])
    assert "cannot import" in " ".join(out["broken-target"])
    assert "imports numpy, torch" in " ".join(out["heavy-registration"])
    assert "no entry point in the 'plugin_registry' group" in out["not-installed-at-all"][0]
