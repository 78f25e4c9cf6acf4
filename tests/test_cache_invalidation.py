"""The warm cache never shows a plugin that is gone nor hides one that was added."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests._support import packages
from tests._support.support import Venv
from tests.conftest import wheel

STATE = """
import json, plugin_registry as pr
reg = pr.default_registry()
names = sorted(f"{r.distribution}:{r.name}" for r in pr.list_plugins()
               if r.distribution != "plugin-registry")
print(json.dumps({"names": names, "scanned": reg.stats.scanned,
                  "collected": reg.stats.collected, "written": reg.stats.cache_written}))
"""


def settle() -> None:
    """Wait out the racy window, so the next cache written is trusted."""
    time.sleep(2.1)


def test_install_upgrade_uninstall_are_seen_through_the_cache(
    fresh_venv: Venv, wheelhouse: Path, tmp_path: Path
) -> None:
    venv = fresh_venv
    venv.install(wheel(wheelhouse, "acme-plugins"))
    settle()
    cold = venv.json(STATE)
    assert cold["scanned"] and cold["written"]
    warm = venv.json(STATE)
    assert not warm["scanned"] and warm["collected"] == 0, "expected a cache hit"
    assert warm["names"] == cold["names"]
    assert "acme-plugins:acme-scheduler" in warm["names"]

    venv.install(wheel(wheelhouse, "multi-kind"))  # added
    after_add = venv.json(STATE)
    assert after_add["scanned"]
    assert "multi-kind:dual" in after_add["names"]

    venv.uninstall("acme-plugins")  # gone
    after_remove = venv.json(STATE)
    assert not any(n.startswith("acme-plugins:") for n in after_remove["names"])

    # An upgrade that renames a plugin: the old name goes, the new one comes.
    v2 = packages.write_wheel(
        tmp_path / "v2",
        "multi-kind",
        "2.0",
        {
            **packages.PACKAGES["multi-kind"][1],
            "multi_kind/registration.py": packages.PACKAGES["multi-kind"][1][
                "multi_kind/registration.py"
            ].replace('name="dual", kind="checkpoint_io"', 'name="dual-v2", kind="checkpoint_io"'),
        },
        packages.PACKAGES["multi-kind"][2],
    )
    settle()
    venv.json(STATE)
    assert not venv.json(STATE)["scanned"]
    venv.install(v2)
    upgraded = venv.json(STATE)
    assert "multi-kind:dual-v2" in upgraded["names"]
    assert upgraded["names"].count("multi-kind:dual") == 1  # only the environment remains


def test_editing_a_registration_module_in_place_is_seen(fresh_venv: Venv, wheelhouse: Path) -> None:
    venv = fresh_venv
    venv.install(wheel(wheelhouse, "multi-kind"))
    settle()
    venv.json(STATE)
    assert not venv.json(STATE)["scanned"]
    module = venv.site / "multi_kind" / "registration.py"
    module.write_text(
        module.read_text().replace(
            'name="dual", kind="cluster_environment"', 'name="edited", kind="cluster_environment"'
        )
    )
    data = venv.json(STATE)
    assert not data["scanned"], "no distribution changed, so no rescan is needed"
    assert data["collected"] == 1, "the edited module is imported again"
    assert "multi-kind:edited" in data["names"]


def test_change_within_the_racy_window_is_not_trusted(fresh_venv: Venv, wheelhouse: Path) -> None:
    venv = fresh_venv
    venv.install(wheel(wheelhouse, "acme-plugins"))
    first = venv.json(STATE)  # site-packages changed < 2 s ago: its mtime is not trusted
    assert first["written"]
    second = venv.json(STATE)
    # ... so its distribution entries are listed and compared instead: unchanged, no rescan
    # (the package's own files are as fresh, so its registration module is imported again).
    assert not second["scanned"]
    # Same-tick change that leaves the directory mtime as it was: still seen.
    site = venv.site
    before = os.stat(site).st_mtime_ns
    venv.install(wheel(wheelhouse, "multi-kind"))
    os.utime(site, ns=(before, before))
    assert "multi-kind:dual" in venv.json(STATE)["names"]


def test_cache_can_be_switched_off_and_cleared(fresh_venv: Venv, wheelhouse: Path) -> None:
    venv = fresh_venv
    venv.install(wheel(wheelhouse, "acme-plugins"))
    settle()
    off = venv.json(STATE, PLUGIN_REGISTRY_NO_CACHE="1")
    assert off["scanned"] and not off["written"]
    assert not venv.cache_dir.exists() or not any(venv.cache_dir.glob("*.json"))
    venv.json(STATE)
    assert any(venv.cache_dir.glob("*.json"))
    proc = venv.cli("cache", "clear")
    assert proc.returncode == 0 and "removed 1 cache file" in proc.stdout
    assert not any(venv.cache_dir.glob("*.json"))
    assert venv.json(STATE)["scanned"]


def test_corrupt_cache_is_rebuilt_with_a_warning(fresh_venv: Venv, wheelhouse: Path) -> None:
    venv = fresh_venv
    venv.install(wheel(wheelhouse, "acme-plugins"))
    settle()
    venv.json(STATE)
    (cache_file,) = venv.cache_dir.glob("*.json")
    cache_file.write_text("{not json")
    proc = venv.run(STATE)
    assert "PluginRegistryWarning" in proc.stderr and "unreadable record cache" in proc.stderr
    assert "acme-plugins:acme-scheduler" in proc.stdout
    assert venv.json(STATE)["scanned"] is False


def test_unwritable_cache_dir_warns_and_still_lists(fresh_venv: Venv, wheelhouse: Path) -> None:
    venv = fresh_venv
    venv.install(wheel(wheelhouse, "acme-plugins"))
    blocker = venv.path.parent / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    proc = venv.run(STATE, PLUGIN_REGISTRY_CACHE_DIR=str(blocker / "cache"))
    assert "cannot write the plugin record cache" in proc.stderr
    assert "PLUGIN_REGISTRY_CACHE_DIR" in proc.stderr
    assert "acme-plugins:acme-scheduler" in proc.stdout


@pytest.mark.parametrize("xdg", [None, "", "  ", "/srv/cache", "relative/cache"])
def test_the_default_cache_directory_is_platformdirs_without_importing_it(
    xdg: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Computed by hand on Linux and macOS (platformdirs costs a warm listing 8 ms): the
    same directory platformdirs gives."""
    import platformdirs

    from plugin_registry import cache

    monkeypatch.delenv("PLUGIN_REGISTRY_CACHE_DIR", raising=False)
    if xdg is None:
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    expected = platformdirs.user_cache_dir("plugin-registry", appauthor=False)
    assert str(cache.default_dir()) == str(Path(expected))
