from __future__ import annotations

import json
import re
import subprocess

from tests._support.support import Venv, script


def test_list_table_groups_by_kind(good_venv: Venv) -> None:
    proc = good_venv.cli("list", COLUMNS="200")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Checkpoint IO plugins" in out and "Cluster environments" in out
    assert "acme-scheduler" in out and "acme-plugins" in out
    assert "codec: gzip, bz2, lzma" in out
    number = re.search(r"needs-missing-lib \[(\d)\]", out)
    assert number, out
    assert f"[{number[1]}] unavailable: definitely-not-installed-lib is not installed" in out
    assert out.index("Checkpoint IO plugins") < out.index("Cluster environments")


def test_list_json_and_kind_filter(good_venv: Venv) -> None:
    data = json.loads(good_venv.cli("list", "--json").stdout)
    by_name = {(p["kind"], p["name"]): p for p in data["plugins"]}
    acme_io = by_name[("checkpoint_io", "acme-compressed-{codec}")]
    assert acme_io["names"] == [
        "acme-compressed-gzip",
        "acme-compressed-bz2",
        "acme-compressed-lzma",
        "acme-compressed",
    ]
    assert acme_io["distribution"] == "acme-plugins" and acme_io["version"] == "0.1.0"
    assert data["problems"] == []
    envs = json.loads(good_venv.cli("list", "--json", "--kind", "cluster_environment").stdout)
    assert {p["kind"] for p in envs["plugins"]} == {"cluster_environment"}


def test_show_and_errors(good_venv: Venv) -> None:
    data = json.loads(good_venv.cli("show", "acme-compressed-bz2", "--json").stdout)
    assert data["requested_parameters"] == {"codec": "bz2"}
    assert data["target"] == "acme_plugins.compressed_io:CompressedCheckpointIO"
    table = good_venv.cli("show", "acme").stdout
    assert "acme_plugins.environment:SchedulerEnvironment" in table
    proc = good_venv.cli("show", "acme-shceduler")
    assert proc.returncode == 2
    assert "Did you mean 'acme-scheduler'?" in proc.stderr
    proc = good_venv.cli("show", "dual")
    assert proc.returncode == 2 and "cluster_environment/dual" in proc.stderr


def test_doctor_passes_on_a_healthy_environment(good_venv: Venv) -> None:
    proc = good_venv.cli("doctor")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(
        r"^0 errors, \d+ warnings, \d+ notes?; exit 0: nothing is broken", proc.stdout, re.M
    )
    assert "acme-plugins:acme" in proc.stdout and " ms" in proc.stdout
    report = json.loads(good_venv.cli("doctor", "--json").stdout)
    warnings = [f for f in report["findings"] if f["severity"] == "warning"]
    assert any("needs-missing-lib" in f["subject"] for f in warnings)


def test_cache_info(good_venv: Venv) -> None:
    info = json.loads(good_venv.cli("cache", "info").stdout)
    assert info["enabled"] and info["directory"] == str(good_venv.cache_dir)
    assert info["file"].startswith(str(good_venv.cache_dir))
    off = json.loads(good_venv.cli("--no-cache", "cache", "info").stdout)
    assert off["enabled"] is False and off["last_listing"]["rescanned_entry_points"]


def test_console_script_is_installed() -> None:
    exe = script("plugin-registry")
    assert exe is not None
    proc = subprocess.run([exe, "list", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0 and "plugins" in json.loads(proc.stdout)


def test_doctor_reports_which_copy_shadows_which(tmp_path, wheelhouse) -> None:
    from tests._support import packages

    venv = Venv(tmp_path / "venv")
    venv.install(packages.build(tmp_path / "w1", "multi-kind", "1.0"))
    extra = tmp_path / "extra"
    venv.pip(
        "install",
        "--no-deps",
        "--no-index",
        "--target",
        str(extra),
        str(packages.build(tmp_path / "w2", "multi-kind", "2.0")),
    )
    proc = venv.cli("doctor", "--json", PYTHONPATH=str(extra))
    report = json.loads(proc.stdout)
    (finding,) = [f for f in report["findings"] if f["subject"] == "multi-kind"]
    assert finding["severity"] == "warning"
    assert "installed 2 times; 2.0 at " in finding["message"]
    assert str(extra) in finding["message"].split("shadows")[0]
    assert "1.0 at " + str(venv.site) in finding["message"].split("shadows")[1]
    listed = json.loads(venv.cli("list", "--json", PYTHONPATH=str(extra)).stdout)
    assert {p["version"] for p in listed["plugins"] if p["distribution"] == "multi-kind"} == {"2.0"}
