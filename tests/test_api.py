"""The public API of ``import plugin_registry as pr`` (issue 14, item 10)."""

from __future__ import annotations

import importlib.metadata

import pytest

import plugin_registry as pr
from plugin_registry.kinds.cluster_environment import ClusterEnvironment
from plugin_registry.registry import Registry
from tests._support.sitedir import StubEnvironment


def test_the_three_jobs_need_nothing_else() -> None:
    for name in (
        "list_plugins", "get", "load", "load_plugins", "register", "unregister", "problems",
        "resolve", "Resolution", "detect_environment", "Registry", "PluginInfo",
        "PluginRegistryError", "ConfigurationError", "PluginNotFoundError", "PluginLoadError",
        "PluginUnavailableError", "ResolutionError", "CheckpointError", "ClusterEnvironmentError",
        "PluginRegistryWarning", "PluginWarning",
    ):  # fmt: skip
        assert hasattr(pr, name), name
        assert name in pr.__all__, name


def test_the_top_level_exports_what_a_user_calls_and_the_errors_users_catch() -> None:
    """Eight errors and two warnings, at the top and in plugin_registry.errors; every
    other exception class there is private, a variant of one of them."""
    from plugin_registry import errors

    exported = [getattr(pr, n) for n in pr.__all__]
    caught = {x for x in exported if isinstance(x, type) and issubclass(x, Exception)}
    assert len([x for x in caught if not issubclass(x, Warning)]) == 8
    assert len([x for x in caught if issubclass(x, Warning)]) == 2
    assert caught == {getattr(errors, n) for n in errors.__all__}
    assert len(pr.__all__) == 30
    for name, obj in vars(errors).items():
        if isinstance(obj, type) and obj.__module__ == errors.__name__ and obj not in caught:
            assert name.startswith("_"), name
            if issubclass(obj, Exception):
                assert any(issubclass(obj, public) for public in caught), name


def test_version_comes_from_the_installed_metadata() -> None:
    assert pr.__version__ == importlib.metadata.version("plugin-registry")


def test_load_takes_a_record_as_well_as_a_name() -> None:
    record = pr.detect_environment()
    environment = pr.load(record)
    assert isinstance(environment, ClusterEnvironment)
    assert type(environment) is type(pr.load(f"cluster_environment/{record.name}"))
    parametrised = pr.get("fsdp-bf16-mixed")
    assert pr.load(parametrised).__class__.__name__ == "FSDPPrecision"


class Named(StubEnvironment):
    """An environment with a parameter called ``name``: overridable since name is positional."""

    def __init__(self, name: str = "default") -> None:
        self.name = name


def test_a_parameter_called_name_can_be_overridden() -> None:
    registry = Registry(cache=False)
    pr.set_default_registry(registry)
    try:
        pr.register(Named, name="named-env", kind="cluster_environment")
        assert pr.load("named-env", name="custom").name == "custom"
        assert pr.load("named-env").name == "default"
        pr.unregister("named-env", "cluster_environment")
        with pytest.raises(pr.PluginNotFoundError):
            pr.get("named-env")
    finally:
        pr.set_default_registry(None)


@pytest.mark.parametrize(
    "old",
    [
        "plugin_registry.detection",
        "plugin_registry.doctor",
        "plugin_registry.hardware",
        "plugin_registry.lightning_bridge",
        "plugin_registry.lock",
        "plugin_registry.preferences",
        "plugin_registry.reference_loop",
        "plugin_registry.resolution",
        "plugin_registry.settings",
    ],
)
def test_module_names_from_before_the_first_release_are_gone(old: str) -> None:
    """0.1.0 is the first release: what moved before it has no alias (CHANGELOG.md)."""
    import importlib

    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(old)


@pytest.mark.parametrize("module", ["plugin_registry", "plugin_registry.cli"])
def test_python_dash_m_runs_the_command(module: str) -> None:
    import json
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", module, "list", "--json"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["plugins"]
