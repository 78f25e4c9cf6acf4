"""`plugin-registry new` makes a package that installs, passes its own tests and the doctor."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from plugin_registry.errors import ConfigurationError, PluginWarning
from plugin_registry.scaffold import create
from tests._support.errors import raises
from tests._support.support import REPO, Venv, build_project_wheel
from tests.test_checkpoint_io import check_full_disk


@pytest.mark.slow
def test_generated_package_installs_and_passes_its_tests(tmp_path: Path) -> None:
    root = create("zeta-plugins", tmp_path, folder="src")
    assert (root / ".github" / "workflows" / "ci.yml").exists()
    wheel = build_project_wheel(root, tmp_path / "dist")
    venv = Venv(tmp_path / "venv")
    venv.install(wheel)
    listed = venv.cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    for name in ("zeta-bf16", "zeta-compressed-{codec}", "zeta-scheduler"):
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
    assert "9 passed" in proc.stdout
    check_template_io_under_faults(venv, tmp_path)


def check_template_io_under_faults(venv: Venv, tmp_path: Path) -> None:
    """The template's checkpoint IO under the built-ins' fault harness: SIGKILL at random
    moments of a save, and a file size limit reached during one."""
    kills = tmp_path / "kills"
    kills.mkdir()
    run = subprocess.run(
        [
            venv.python,
            str(REPO / "tests" / "workers" / "kill_during_save.py"),
            str(kills),
            "20",
            "99",
            "--io",
            "zeta-compressed-gzip",
            "--set",
            "level=1",
        ],
        capture_output=True,
        text=True,
        env=venv.env(),
        cwd=venv.cwd,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    counts = json.loads(run.stdout.strip().splitlines()[-1])
    assert counts["intact"] == 20 and counts["corrupt"] == 0, counts
    # A kill lands inside the write itself only now and then (compressing takes 95% of a
    # save), so whether one did is not asserted here; tests/test_checkpoint_io.py runs the
    # template's IO through the deterministic faults (dead writers' temporaries, failed
    # saves) beside the built-in one.
    assert counts["temporaries_after_next_save"] == counts["other_files_after_next_save"] == 0
    print(f"template IO, SIGKILL during save: {counts}")
    full = tmp_path / "full"
    full.mkdir()
    check_full_disk(
        full, "rlimit", venv.python, "zeta-compressed-gzip", env=venv.env(), cwd=venv.cwd
    )


def test_generated_package_is_what_the_template_says(tmp_path: Path) -> None:
    root = create("acme-vision-plugins", tmp_path)
    registration = (root / "acme_vision_plugins" / "registration.py").read_text()
    assert 'name="acme-bf16"' in registration
    assert 'target="acme_vision_plugins.precision:BF16Autocast"' in registration
    assert "$" not in registration
    pyproject = (root / "pyproject.toml").read_text()
    assert 'acme = "acme_vision_plugins.registration"' in pyproject
    environment = (root / "acme_vision_plugins" / "environment.py").read_text()
    assert "class SchedulerEnvironment(ClusterEnvironment):" in environment
    assert "ACME_RANK='x'" not in environment and "{name}={value!r}" in environment
    assert "${{ matrix.python }}" in (root / ".github" / "workflows" / "ci.yml").read_text()
    compile((root / "tests" / "test_plugins.py").read_text(), "test_plugins.py", "exec")


@pytest.mark.parametrize("bad", ["Acme", "acme_plugins", "-acme", "acme--x", "1acme"])
def test_bad_names_are_refused(tmp_path: Path, bad: str) -> None:
    with raises(ConfigurationError, "scaffold", match="not a package name"):
        create(bad, tmp_path)


def test_existing_destination_is_not_overwritten(tmp_path: Path) -> None:
    create("zeta-plugins", tmp_path)
    with raises(ConfigurationError, "scaffold", match="exists"):
        create("zeta-plugins", tmp_path)


def test_a_missing_destination_is_refused_not_created(tmp_path: Path) -> None:
    typo = tmp_path / "typo" / "path"
    with raises(
        ConfigurationError, "scaffold", match=r"destination '.*typo/path' does not exist; create it"
    ):
        create("zeta-plugins", typo)
    assert not (tmp_path / "typo").exists()
    (tmp_path / "file").write_text("")
    with raises(ConfigurationError, "scaffold", match="is not a directory"):
        create("zeta-plugins", tmp_path / "file")


def test_the_folder_can_be_named(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from plugin_registry import cli

    root = create("zeta-plugins", tmp_path, folder="zeta")
    assert root == tmp_path / "zeta" and (root / "zeta_plugins" / "registration.py").is_file()
    for bad in ("", "a/b", ".."):
        with raises(ConfigurationError, "scaffold", match="not a folder name"):
            create("zeta-plugins", tmp_path, folder=bad)
    code = cli.main(["new", "zeta-plugins", "--dest", str(tmp_path), "--folder", "z2"])
    _, err = capfd.readouterr()
    assert code == 0 and (tmp_path / "z2" / "pyproject.toml").is_file(), err
    code = cli.main(["new", "zeta-plugins", "--dest", str(tmp_path / "nope")])
    _, err = capfd.readouterr()
    assert code == 2 and "does not exist" in err and err.count("\n") == 1
    assert not (tmp_path / "nope").exists()


def test_check_package_names_what_it_could_not_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A target whose library is missing is never imported: said, never silently passed."""
    from plugin_registry.testing import assert_valid_package, check_package
    from tests._support.sitedir import SiteDir, install_env_package

    site = SiteDir(tmp_path / "site")
    monkeypatch.syspath_prepend(str(site.path))
    install_env_package(
        site, "needy-plugins", "needy", extra=', requires=("surely-not-installed-lib>=1",)'
    )
    with pytest.warns(PluginWarning, match="cluster_environment/needy-plugins:needy was "
                      "not imported: surely-not-installed-lib is not installed"):  # fmt: skip
        assert check_package("needy-plugins") == []
    problems = check_package("needy-plugins", require_all=True)
    assert len(problems) == 1 and "surely-not-installed-lib is not installed" in problems[0]
    with pytest.raises(AssertionError, match="1 problem"):
        assert_valid_package("needy-plugins", require_all=True)


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "acme-plugins"


def _tracked(root: Path) -> dict[str, str]:
    """The example's files as git would track them (no build output, no egg-info)."""
    skip = ("build", "dist", "__pycache__", ".pytest_cache")
    return {
        p.relative_to(root).as_posix(): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and not any(part in skip or part.endswith("egg-info") for part in p.relative_to(root).parts)
    }


def test_the_example_package_is_the_template_rendered() -> None:
    """One source: examples/acme-plugins is `plugin-registry new acme-plugins`, unedited
    (`python -m tests.test_template` writes it again after a template change)."""
    from plugin_registry.scaffold import fields, render

    assert _tracked(EXAMPLE) == render(fields("acme-plugins"))


if __name__ == "__main__":
    import shutil

    from plugin_registry.scaffold import create as _create

    shutil.rmtree(EXAMPLE, ignore_errors=True)
    _create("acme-plugins", EXAMPLE.parent)
    print(f"wrote {EXAMPLE}")


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
