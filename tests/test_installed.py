"""Listing, lookup and loading with really installed packages, in subprocesses."""

from __future__ import annotations

import json

import pytest

from tests._support.support import Venv

LIST_JSON = """
import json, sys, plugin_registry as pr
records = pr.list_plugins()
print(json.dumps({
    "plugins": [[r.kind, r.name, r.distribution, r.available, r.unavailable_reason]
                for r in records],
    "problems": [[p.distribution, p.entry_point, p.severity, p.reason] for p in pr.problems()],
    "modules": sorted(m for m in sys.modules if m.split(".")[0] in
                      ("torch", "acme_plugins", "multi_kind", "needs_missing")),
    "stats": vars(pr.default_registry().stats),
}))
"""


def names(data: dict) -> set[tuple[str, str]]:
    return {(kind, name) for kind, name, *_ in data["plugins"]}


def test_listing_shows_installed_packages_and_imports_no_target(good_venv: Venv) -> None:
    data = good_venv.json(LIST_JSON)
    assert {
        ("checkpoint_io", "acme-compressed-{codec}"),
        ("cluster_environment", "acme-scheduler"),
        ("checkpoint_io", "dual"),
        ("cluster_environment", "dual"),
        ("checkpoint_io", "needs-missing-lib"),
    } <= names(data)
    # Registration modules were imported (cold), but no target and no torch.
    assert "torch" not in data["modules"]
    assert "acme_plugins.environment" not in data["modules"]
    assert "acme_plugins.compressed_io" not in data["modules"]
    assert "acme_plugins.precision" not in data["modules"]
    assert data["problems"] == []
    providers = {name: dist for _, name, dist, *_ in data["plugins"]}
    assert providers["acme-scheduler"] == "acme-plugins"


def test_listing_order_is_stable(good_venv: Venv) -> None:
    first = good_venv.json(LIST_JSON)["plugins"]
    second = good_venv.json(LIST_JSON)["plugins"]
    assert first == second
    kinds = [k for k, *_ in first]
    order = ["precision", "checkpoint_io", "cluster_environment"]
    assert kinds == sorted(kinds, key=order.index)


def test_unmet_requirements_are_listed_as_unavailable(good_venv: Venv) -> None:
    data = good_venv.json(LIST_JSON)
    status = {name: (ok, why) for _, name, _, ok, why in data["plugins"]}
    ok, why = status["needs-missing-lib"]
    assert not ok
    assert "definitely-not-installed-lib is not installed" in why
    assert "pip install 'definitely-not-installed-lib>=1.0'" in why
    ok, why = status["needs-newer-torch"]
    assert not ok and "torch>=99 is required" in why and "needs-missing[future]" in why
    err = good_venv.run(
        "import plugin_registry as pr; pr.load('needs-missing-lib')", check=False
    ).stderr
    assert "PluginUnavailableError" in err and "definitely-not-installed-lib" in err


LOOKUP = """
import json, sys, plugin_registry as pr
out = {}
for spec, kind in json.loads(sys.argv[1]):
    key = spec if kind is None else f"{spec}@{kind}"
    try:
        m = pr.default_registry().find(spec, kind)
        out[key] = ["ok", m.record.kind, m.record.name, m.record.distribution, m.parameters]
    except pr.PluginRegistryError as exc:
        out[key] = [type(exc).__name__ + ":" + getattr(exc, "reason", ""), str(exc)]
out["modules"] = sorted(m for m in sys.modules if m.startswith(
    ("torch", "acme_plugins.environment", "acme_plugins.compressed_io")))
print(json.dumps(out))
"""


def lookup(venv: Venv, *specs: str | tuple[str, str | None], **env: str) -> dict:
    pairs = [s if isinstance(s, tuple) else (s, None) for s in specs]
    proc = venv.run(LOOKUP, args=(json.dumps(pairs),), **env)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_lookup_by_name_alias_parametrised_and_qualified(good_venv: Venv) -> None:
    out = lookup(
        good_venv,
        "acme-scheduler",
        "ACME_Scheduler",
        "acme",
        "acme-compressed-bz2",
        "acme_compressed_LZMA",
        "acme-compressed",
        "acme-plugins:acme-scheduler",
        "Acme_Plugins:acme",
        "cluster_environment/acme",
        "cluster-environment/acme-plugins:acme-scheduler",
        ("acme", "cluster_environment"),
    )
    assert out["acme@cluster_environment"][2] == "acme-scheduler"
    assert out["acme-scheduler"][:4] == [
        "ok",
        "cluster_environment",
        "acme-scheduler",
        "acme-plugins",
    ]
    assert out["ACME_Scheduler"][2] == "acme-scheduler"
    assert out["acme"][2] == "acme-scheduler"
    assert out["acme-compressed-bz2"][2:] == [
        "acme-compressed-{codec}",
        "acme-plugins",
        {"codec": "bz2"},
    ]
    assert out["acme_compressed_LZMA"][4] == {"codec": "lzma"}
    assert out["acme-compressed"][4] == {}
    for spec in (
        "acme-plugins:acme-scheduler",
        "Acme_Plugins:acme",
        "cluster_environment/acme",
        "cluster-environment/acme-plugins:acme-scheduler",
    ):
        assert out[spec][:3] == ["ok", "cluster_environment", "acme-scheduler"], spec
    assert out["modules"] == [], "lookup must not import targets or torch"


def test_unknown_names_suggest_close_ones(good_venv: Venv) -> None:
    out = lookup(
        good_venv,
        "acme-schedular",
        "acme-compressed-zstd",
        ("acme", "checkpoint_io"),
        "other-dist:acme",
        "precision/acme",
    )
    kind, message = out["acme-schedular"]
    assert kind == "PluginNotFoundError:unknown"
    assert "Did you mean 'acme-scheduler'" in message and "plugin-registry list" in message
    assert "acme-compressed-lzma" in out["acme-compressed-zstd"][1]
    assert "there is cluster_environment/acme" in out["acme@checkpoint_io"][1]
    assert "provided by acme-plugins" in out["other-dist:acme"][1]
    assert out["precision/acme"][0] == "PluginNotFoundError:unknown"


def test_name_in_several_kinds_needs_a_kind(good_venv: Venv) -> None:
    out = lookup(good_venv, "dual", "checkpoint_io/dual", ("dual", "cluster_environment"))
    kind, message = out["dual"]
    assert kind == "PluginNotFoundError:ambiguous"
    assert "'checkpoint_io/dual'" in message and "'cluster_environment/dual'" in message
    assert out["checkpoint_io/dual"][1] == "checkpoint_io"
    assert out["dual@cluster_environment"][1] == "cluster_environment"


def test_load_builds_the_plugin_with_name_parameters_and_overrides(good_venv: Venv) -> None:
    data = good_venv.json(
        """
        import json, plugin_registry as pr
        io = pr.load("acme-compressed-lzma")
        io2 = pr.load("acme-compressed", level=1)
        env = pr.load("cluster_environment/acme")
        plugins = pr.load_plugins(["acme-compressed-bz2", "cluster_environment/dual", env])
        print(json.dumps({
            "io": [type(io).__name__, io.codec, io.level],
            "io2": [io2.codec, io2.level],
            "env": type(env).__name__,
            "list": [type(p).__name__ for p in plugins],
            "same_instance": plugins[2] is env,
        }))
        """
    )
    assert data["io"] == ["CompressedCheckpointIO", "lzma", 6]
    assert data["io2"] == ["gzip", 1]
    assert data["env"] == "SchedulerEnvironment"
    assert data["list"] == ["CompressedCheckpointIO", "DualEnvironment", "SchedulerEnvironment"]
    assert data["same_instance"]


def test_load_rejects_unknown_parameters_with_suggestion(good_venv: Venv) -> None:
    err = good_venv.run(
        "import plugin_registry as pr; pr.load('acme-compressed', levle=3)", check=False
    ).stderr
    assert "takes no parameter 'levle'. Did you mean 'level'?" in err
    assert "It accepts: codec, level" in err


def test_conflicting_distributions_never_shadow(good_venv: Venv, tmp_path, wheelhouse) -> None:
    from tests.conftest import wheel

    venv = Venv(tmp_path / "venv")
    venv.install(wheel(wheelhouse, "acme-plugins"), wheel(wheelhouse, "acme-conflict"))
    out = lookup(venv, "acme-scheduler", "acme", "acme-conflict:acme-scheduler")
    kind, message = out["acme-scheduler"]
    assert kind == "PluginNotFoundError:conflict"
    assert "acme-conflict and acme-plugins" in message
    assert "'acme-conflict:acme-scheduler'" in message and "PLUGIN_REGISTRY_PIN" in message
    # The alias is served by one provider only, so it stays usable.
    assert out["acme"][3] == "acme-plugins"
    assert out["acme-conflict:acme-scheduler"][3] == "acme-conflict"
    pinned = lookup(venv, "acme-scheduler", PLUGIN_REGISTRY_PIN="acme-scheduler=acme-conflict")
    assert pinned["acme-scheduler"][3] == "acme-conflict"
    pinned = lookup(
        venv,
        "acme-scheduler",
        PLUGIN_REGISTRY_PIN="cluster_environment/acme-scheduler=acme_plugins",
    )
    assert pinned["acme-scheduler"][3] == "acme-plugins"
    problems = venv.json(LIST_JSON)["problems"]
    assert any("registered by acme-conflict and acme-plugins" in p[3] for p in problems)
    # Pinned: no longer reported.
    problems = venv.json(LIST_JSON, PLUGIN_REGISTRY_PIN="acme-scheduler=acme-conflict")["problems"]
    assert problems == []


def test_autoload_off_loads_only_enabled_distributions(good_venv: Venv) -> None:
    off = good_venv.json(LIST_JSON, PLUGIN_REGISTRY_DISABLE_AUTOLOAD="1")
    assert not any(dist in ("acme-plugins", "multi-kind") for _, _, dist, *_ in off["plugins"])
    assert "acme_plugins" not in off["modules"], "a disabled package must not be imported"
    enabled = good_venv.json(
        LIST_JSON, PLUGIN_REGISTRY_DISABLE_AUTOLOAD="1", PLUGIN_REGISTRY_ENABLE="acme-plugins"
    )
    assert {dist for _, _, dist, *_ in enabled["plugins"]} == {"acme-plugins"}
    out = lookup(good_venv, "acme", PLUGIN_REGISTRY_DISABLE_AUTOLOAD="1")
    # Installed but kept out: said so, a PluginNotFoundError of its own reason (issue 13, item 9).
    assert out["acme"][0] == "PluginNotFoundError:blocked"
    assert "autoload is off" in out["acme"][1] and "PLUGIN_REGISTRY_ENABLE" in out["acme"][1]
    # The constructor argument does the same as the variable.
    data = good_venv.json(
        """
        import json, plugin_registry as pr
        reg = pr.Registry(autoload=False, enable=["multi-kind"])
        print(json.dumps(sorted({r.distribution for r in reg.list_plugins()})))
        """
    )
    assert data == ["multi-kind"]


def test_allow_and_block_lists(good_venv: Venv) -> None:
    blocked = good_venv.json(LIST_JSON, PLUGIN_REGISTRY_BLOCK="acme-plugins:*")
    assert not any(dist == "acme-plugins" for _, _, dist, *_ in blocked["plugins"])
    assert "acme_plugins" not in blocked["modules"], "a blocked distribution is not imported"
    allowed = good_venv.json(LIST_JSON, PLUGIN_REGISTRY_ALLOW="acme-*")
    assert {n for _, n, *_ in allowed["plugins"]} == {
        "acme-bf16",
        "acme-compressed-{codec}",
        "acme-scheduler",
    }
    # Name-level block: the one concrete name is hidden, its siblings stay.
    out = lookup(
        good_venv,
        "acme-compressed-bz2",
        "acme-compressed-gzip",
        PLUGIN_REGISTRY_BLOCK="acme-compressed-bz2",
    )
    assert out["acme-compressed-bz2"][0] == "PluginNotFoundError:blocked"
    assert "blocked by pattern 'acme-compressed-bz2'" in out["acme-compressed-bz2"][1]
    assert out["acme-compressed-gzip"][0] == "ok"
    out = lookup(good_venv, "dual", "acme", PLUGIN_REGISTRY_ALLOW="multi-kind:*")
    assert out["acme"][0] in ("PluginNotFoundError:blocked", "PluginNotFoundError:unknown")
    assert out["dual"][0] == "PluginNotFoundError:ambiguous"
    data = good_venv.json(
        """
        import json, plugin_registry as pr
        reg = pr.Registry(block=["*:dual"], allow=None)
        print(json.dumps(sorted({r.name for r in reg.list_plugins()})))
        """
    )
    assert "dual" not in data and "acme-scheduler" in data


@pytest.mark.parametrize("env", [{}, {"PLUGIN_REGISTRY_NO_CACHE": "1"}])
def test_import_and_listing_import_no_torch(good_venv: Venv, env: dict[str, str]) -> None:
    for _ in range(2):  # cold, then (where enabled) warm
        data = good_venv.json(
            """
            import json, sys
            import plugin_registry as pr
            after_import = sorted(m for m in ("torch", "pluggy", "importlib_metadata")
                                  if m in sys.modules)
            pr.list_plugins(); pr.get("acme"); pr.get("acme-compressed-bz2")
            print(json.dumps({"after_import": after_import,
                              "torch": "torch" in sys.modules,
                              "targets": [m for m in sys.modules if m.startswith(
                                  ("acme_plugins.environment", "acme_plugins.compressed_io"))]}))
            """,
            **env,
        )
        assert data == {"after_import": [], "torch": False, "targets": []}
