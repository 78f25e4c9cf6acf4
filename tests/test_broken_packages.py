"""Every kind of broken plugin package is isolated: listing and the host survive."""

from __future__ import annotations

import json

import pytest

from tests._support.support import Venv

PROBLEMS = """
import json, warnings, plugin_registry as pr
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    reg = pr.Registry()
    records = reg.list_plugins()
    reg.list_plugins()
    pr.Registry().list_plugins()      # a second registry: no second warning
print(json.dumps({
    "names": sorted(r.name for r in records),
    "problems": [[p.distribution, p.entry_point, p.severity, p.reason, p.detail != ""]
                 for p in reg.problems()],
    "warnings": [str(w.message) for w in caught
                 if issubclass(w.category, pr.PluginWarning)],
    "alive": True,
    "scanned": reg.stats.scanned,
}))
"""


@pytest.fixture(scope="module", params=["cold", "warm"])
def listing(request: pytest.FixtureRequest, broken_venv: Venv) -> dict:
    if request.param == "warm":
        import time

        time.sleep(2.1)  # past the racy window, so the cache written below is trusted
        broken_venv.json(PROBLEMS)
        data = broken_venv.json(PROBLEMS)
        assert not data["scanned"], "the warm listing must come from the cache"
        return data
    return broken_venv.json(PROBLEMS)


def reasons(listing: dict, dist: str) -> list[str]:
    return [reason for d, _, _, reason, _ in listing["problems"] if d == dist]


def test_good_plugins_survive_beside_broken_ones(listing: dict) -> None:
    assert listing["alive"]
    assert {"acme-scheduler", "acme-compressed-{codec}"} <= set(listing["names"])
    # Valid records of partly broken packages are kept.
    assert {"survivor-env", "record-survivor", "twice", "ghost", "heavy"} <= set(listing["names"])


@pytest.mark.parametrize(
    ("dist", "expected"),
    [
        ("broken-import", "failed to load: RuntimeError: boom at import"),
        ("broken-missing-dep", "ModuleNotFoundError: No module named 'not_a_real_module_xyz'"),
        ("broken-sysexit", "failed to load: SystemExit: 3"),
        (
            "broken-hook-raises",
            "plugin_registry_precision_plugins() raised ValueError: hook exploded",
        ),
        ("broken-wrong-type", "plugin_registry_precision_plugins() returned dict, not a list"),
        ("broken-wrong-type", "expected a plugin_registry.PluginInfo, got str"),
        ("broken-record", "target 'no-colon-here' is not of the form"),
        ("broken-record", "'Bad Name!' is not a valid plugin name"),
        ("broken-record", "kind 'precision' returned from the 'cluster_environment' hook"),
        ("broken-duplicate", "reuses the name(s) ['twice']"),
        ("broken-entry-point", "'this is not : a valid :: reference!' is malformed"),
        ("broken-entry-point", "No module named 'nonexistent_module_xyz'"),
        ("heavy-registration", "imports numpy, torch"),
    ],
)
def test_each_fault_is_listed_with_its_reason(listing: dict, dist: str, expected: str) -> None:
    assert any(expected in reason for reason in reasons(listing, dist)), reasons(listing, dist)


def test_each_problem_warns_once_per_process(listing: dict) -> None:
    errors = [p for p in listing["problems"] if p[2] == "error"]
    assert len(errors) >= 12
    assert len(listing["warnings"]) == len(listing["problems"])
    assert len(set(listing["warnings"])) == len(listing["warnings"])


def test_loading_a_broken_plugin_chains_the_original_error(broken_venv: Venv) -> None:
    data = broken_venv.json(
        """
        import json, plugin_registry as pr
        out = {}
        for name in ("broken-import", "bad-target", "ghost", "survivor-env"):
            try:
                obj = pr.load(name)
                out[name] = ["ok", type(obj).__name__]
            except pr.PluginRegistryError as exc:
                cause = exc.__cause__
                kind = type(exc).__name__ + ":" + getattr(exc, "reason", "")
                out[name] = [kind, str(exc), type(cause).__name__, str(cause)]
        print(json.dumps(out))
        """,
        PYTHONWARNINGS="ignore",
    )
    assert data["broken-import"][0] == "PluginNotFoundError:broken"
    assert data["broken-import"][2:] == ["RuntimeError", "boom at import"]
    assert "broken-import is broken" in data["broken-import"][1]
    assert data["bad-target"][0] == "PluginNotFoundError:broken"
    assert data["bad-target"][2] == "ConfigurationError"
    assert data["ghost"][0] == "PluginLoadError:"
    assert data["ghost"][2] == "ModuleNotFoundError"
    assert "broken_target.gone" in data["ghost"][1]
    assert data["survivor-env"] == ["ok", "SurvivorEnvironment"]


def test_chained_error_is_recovered_when_listing_came_from_the_cache(broken_venv: Venv) -> None:
    import time

    broken_venv.json(PROBLEMS)
    time.sleep(2.1)
    broken_venv.json(PROBLEMS)  # writes a trusted cache
    data = broken_venv.json(
        """
        import json, plugin_registry as pr
        reg = pr.Registry()
        reg.list_plugins()
        try:
            reg.load("broken-import")
        except pr.PluginNotFoundError as exc:
            assert exc.reason == "broken", exc.reason
            print(json.dumps([reg.stats.scanned, reg.stats.collected, repr(exc.__cause__)]))
        """,
        PYTHONWARNINGS="ignore",
    )
    assert data == [False, 0, "RuntimeError('boom at import')"]


def test_doctor_reports_every_fault_and_fails(broken_venv: Venv) -> None:
    proc = broken_venv.cli("doctor", "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert not report["ok"]
    subjects = {f["subject"] for f in report["findings"] if f["severity"] == "error"}
    assert "heavy-registration:plugins" in subjects
    assert "cluster_environment/broken-target:ghost" in subjects
    assert any(s.startswith("broken-import:") for s in subjects)
    heavy = next(
        f
        for f in report["findings"]
        if f["subject"] == "heavy-registration:plugins"
        and "imports" in f["message"]
        and "ms)" in f["message"]
    )
    assert "torch" in heavy["message"] and heavy["fix"]
    assert "acme-plugins:acme" in report["import_times"]
    assert report["import_times"]["acme-plugins:acme"] > 0
