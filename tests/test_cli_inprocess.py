"""The CLI in-process (``cli.main`` and the captured streams): the inner loop's CLI tests.

tests/test_cli.py keeps the same commands against packages pip-installed in a venv.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plugin_registry import cli
from tests._support.sitedir import SiteDir, install_env_package


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SiteDir:
    d = SiteDir(tmp_path / "site")
    monkeypatch.syspath_prepend(str(d.path))
    install_env_package(d, "inproc-plugins", "inproc-scheduler", extra=', summary="Schedules."')
    return d


def run(capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["--no-cache", *args])
    out, err = capfd.readouterr()
    return code, out, err


def test_list_table_and_json(site: SiteDir, capfd: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capfd, "list")
    assert code == 0
    assert out.index("Precision plugins") < out.index("Checkpoint IO plugins")
    assert "inproc-scheduler" in out and "inproc-plugins" in out
    code, out, _ = run(capfd, "list", "--json", "--kind", "cluster_environment")
    data = json.loads(out)
    assert {p["kind"] for p in data["plugins"]} == {"cluster_environment"}
    (mine,) = [p for p in data["plugins"] if p["distribution"] == "inproc-plugins"]
    assert mine["names"] == ["inproc-scheduler"] and mine["summary"] == "Schedules."


def test_show_answers_and_errors(site: SiteDir, capfd: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capfd, "show", "bitsandbytes-fp4", "--json")
    assert code == 0 and json.loads(out)["requested_parameters"] == {"mode": "fp4"}
    code, out, _ = run(capfd, "show", "inproc-scheduler")
    assert code == 0 and ".env:Env" in out
    code, _, err = run(capfd, "show", "inproc-shceduler")
    assert code == 2 and "Did you mean 'inproc-scheduler'?" in err
    code, _, err = run(capfd, "show", "xla")
    assert code == 2 and "'checkpoint_io/xla'" in err and "'cluster_environment/xla'" in err


def test_doctor_and_cache_info(site: SiteDir, capfd: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capfd, "doctor", "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"], report
    assert "inproc-plugins:plugins" in report["import_times"]
    code, out, _ = run(capfd, "cache", "info")
    info = json.loads(out)
    assert code == 0 and info["enabled"] is False
    assert info["last_listing"]["rescanned_entry_points"]


def test_resolve_and_hardware(site: SiteDir, capfd: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capfd, "resolve", "--precision", "bf16-mixed")
    assert code == 0 and "bf16-mixed" in out and "chosen" in out
    code, out, _ = run(capfd, "hardware", "--json")
    assert code == 0 and json.loads(out)["cpu_cores"] >= 1
    code, _, err = run(capfd, "resolve", "--precision", "bf17")
    assert code == 2 and err.startswith("plugin-registry: error:")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import plugin_registry

    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"plugin-registry {plugin_registry.__version__}"


def test_resolve_lock_errors_are_one_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    lock = tmp_path / "plugins.lock"
    code, _, err = run(capfd, "resolve", "--write-lock", str(lock))
    assert code == 0 and lock.is_file(), err
    code, out, err = run(capfd, "resolve", "--lock", str(lock), "--strategy", "fsdp")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "strategy='fsdp' contradicts the lock" in err
    code, _, err = run(capfd, "resolve", "--lock", str(lock), "--strategy", "single_device")
    assert code == 0, err
    for target, says in [
        (tmp_path / "missing" / "plugins.lock", "does not exist"),
        (tmp_path, "Is a directory"),
    ]:
        code, out, err = run(capfd, "resolve", "--write-lock", str(target))
        assert code == 2 and err.count("\n") == 1 and says in err, err
