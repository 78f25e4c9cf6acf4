"""The Registry's own logic, with in-process plugins (no entry points involved)."""

from __future__ import annotations

import pytest

import plugin_registry as pr
from plugin_registry import PluginInfo, Registry
from plugin_registry.errors import ConfigurationError
from plugin_registry.kinds.cluster_environment import ClusterEnvironment
from tests._support.errors import raises


class StaticEnvironment(ClusterEnvironment):
    def __init__(self, world: int = 1, rank: int = 0) -> None:
        self.world, self.rank = world, rank

    creates_processes_externally = True  # type: ignore[assignment]
    main_address = "127.0.0.1"  # type: ignore[assignment]
    main_port = 1234  # type: ignore[assignment]

    @staticmethod
    def detect() -> bool:
        return True

    def world_size(self) -> int:
        return self.world

    def set_world_size(self, size: int) -> None:
        self.world = size

    def global_rank(self) -> int:
        return self.rank

    def set_global_rank(self, rank: int) -> None:
        self.rank = rank

    def local_rank(self) -> int:
        return 0

    def node_rank(self) -> int:
        return 0


@pytest.fixture
def registry() -> Registry:
    # A group nobody registers in: only in-process plugins are visible.
    return Registry(group="plugin_registry_tests_empty", cache=False)


def test_register_a_class_and_load_it(registry: Registry) -> None:
    rec = registry.register(
        StaticEnvironment,
        name="static-{world}",
        kind="cluster_environment",
        name_parameters={"world": ["2", "4"]},
        aliases=["fixed"],
        parameters={"rank": 1},
    )
    assert rec.distribution is None and rec.provider == "<in-process>"
    env = registry.load("fixed")
    assert isinstance(env, StaticEnvironment) and (env.rank, env.world) == (1, 1)
    # The name fills its parameter (as a string: the factory converts what it needs);
    # the caller's overrides win over the record's defaults.
    env = registry.load("static-4", rank=3)
    assert (env.world, env.rank) == ("4", 3)
    with pytest.raises(pr.PluginLoadError, match="takes no parameter 'colour'"):
        registry.load("static-4", colour="red")
    assert [r.name for r in registry.list_plugins("cluster_environment")] == ["static-{world}"]


def test_register_record_with_string_target(registry: Registry) -> None:
    registry.register(
        PluginInfo(
            name="by-path",
            kind="cluster_environment",
            target="tests.test_registry:StaticEnvironment",
        )
    )
    assert isinstance(registry.load("by-path", world=3), StaticEnvironment)


def test_register_conflict_needs_override(registry: Registry) -> None:
    registry.register(StaticEnvironment, name="env", kind="cluster_environment")

    class Other(StaticEnvironment):
        pass

    with raises(ConfigurationError, "name", match="override=True"):
        registry.register(Other, name="ENV", kind="cluster_environment")
    registry.register(Other, name="env", kind="cluster_environment", override=True)
    assert type(registry.load("env")) is Other
    registry.unregister("env", "cluster_environment")
    with pytest.raises(pr.PluginNotFoundError):
        registry.get("env")


def test_target_of_the_wrong_kind_is_refused(registry: Registry) -> None:
    registry.register(dict, name="not-an-env", kind="cluster_environment")
    with pytest.raises(pr.PluginLoadError, match=r"is not a plugin_registry\.kinds"):
        registry.load("not-an-env")


def test_factory_errors_are_chained(registry: Registry) -> None:
    def factory() -> ClusterEnvironment:
        raise OSError("no scheduler here")

    registry.register(factory, name="fails", kind="cluster_environment")
    with pytest.raises(pr.PluginLoadError, match="no scheduler here") as info:
        registry.load("fails")
    assert isinstance(info.value.__cause__, OSError)


def test_unimportable_target_is_a_load_error(registry: Registry) -> None:
    registry.register(PluginInfo(name="gone", kind="checkpoint_io", target="no_such_mod:X"))
    with pytest.raises(pr.PluginLoadError, match="cannot import 'no_such_mod:X'") as info:
        registry.load("gone")
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_load_plugins_mixes_names_records_and_instances(registry: Registry) -> None:
    rec = registry.register(StaticEnvironment, name="a", kind="cluster_environment")
    instance = StaticEnvironment()
    built = registry.load_plugins(["cluster_environment/a", rec, instance])
    assert isinstance(built[0], StaticEnvironment) and isinstance(built[1], StaticEnvironment)
    assert built[2] is instance


def test_load_plugins_takes_a_parametrised_record(registry: Registry) -> None:
    rec = registry.register(
        StaticEnvironment,
        name="fixed-{world}",
        kind="cluster_environment",
        name_parameters={"world": ["3", "5"]},
    )
    (env,) = registry.load_plugins([rec])
    assert isinstance(env, StaticEnvironment) and env.world == "3"


def test_unavailable_in_process_plugin(registry: Registry) -> None:
    registry.register(
        StaticEnvironment,
        name="needs",
        kind="cluster_environment",
        requires=("surely-absent-dist>=1",),
    )
    rec = registry.get("needs")
    assert not rec.available and "surely-absent-dist is not installed" in rec.unavailable_reason
    with pytest.raises(pr.PluginUnavailableError, match="pip install 'surely-absent-dist>=1'"):
        registry.load("needs")


def test_requirement_markers_and_versions(registry: Registry) -> None:
    registry.register(
        StaticEnvironment,
        name="other-os",
        kind="cluster_environment",
        requires=("pluggy; sys_platform == 'nonexistent'",),
    )
    registry.register(
        StaticEnvironment, name="ok", kind="cluster_environment", requires=("pluggy>=1",)
    )
    assert "does not apply to this platform" in registry.get("other-os").unavailable_reason
    assert registry.get("ok").available


def test_module_level_functions_use_the_default_registry(registry: Registry) -> None:
    pr.set_default_registry(registry)
    try:
        pr.register(StaticEnvironment, name="via-module", kind="cluster_environment")
        assert pr.get("via-module").name == "via-module"
        assert isinstance(pr.load("via-module"), StaticEnvironment)
        assert [type(p) for p in pr.load_plugins(["via-module"])] == [StaticEnvironment]
        assert pr.problems() == []
    finally:
        pr.set_default_registry(None)


def test_bad_control_input_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLUGIN_REGISTRY_PIN", "no-equals-sign")
    with raises(ConfigurationError, "name", match="is not name=distribution"):
        Registry()
    with raises(ConfigurationError, "name", match="unknown plugin kind"):
        Registry(pins={"precison/xla": "acme"})


# -- what a failed lookup says ---------------------------------------------------


def quoted_suggestions(message: str) -> tuple[str, ...]:
    import re

    found = re.search(r"Did you mean (.*?)\?", message)
    return tuple(re.findall(r"'([^']+)'", found[1])) if found else ()


@pytest.mark.parametrize("asked", ["fp8", "bf16-mixd", "nf4", "slurmm", "nothing-like-it"])
def test_the_message_suggests_what_the_suggestions_field_holds(asked: str) -> None:
    """One suggestion list: callers read .suggestions, people read the message."""
    with pytest.raises(pr.PluginNotFoundError) as info:
        pr.get(asked)
    assert quoted_suggestions(str(info.value)) == info.value.suggestions
    if asked == "fp8":  # found through the summaries, not the spelling
        assert "transformer-engine" in info.value.suggestions
    if asked == "nothing-like-it":
        assert info.value.suggestions == ()


@pytest.fixture
def zstd(registry: Registry) -> Registry:
    registry.register(
        StaticEnvironment,
        name="zstd-{level}",
        kind="cluster_environment",
        name_parameters={"level": [str(n) for n in range(1, 23)]},
        aliases=["zstd"],
    )
    registry.register(
        StaticEnvironment,
        name="codec-{codec}",
        kind="cluster_environment",
        name_parameters={"codec": ["gzip", "bz2", "lzma"]},
    )
    return registry


@pytest.mark.parametrize("asked", ["zstd-33", "zstd-0", "zstd-x"])
def test_a_parametrised_name_out_of_range_states_the_range(zstd: Registry, asked: str) -> None:
    with pytest.raises(pr.PluginNotFoundError) as info:
        zstd.get(asked)
    value = asked.split("-", 1)[1]
    assert f"'zstd-{{level}}' takes level from 1 to 22, not '{value}'" in str(info.value)


def test_a_parametrised_name_outside_its_choices_lists_them(zstd: Registry) -> None:
    zstd.register(
        StaticEnvironment,
        name="bits-{bits_per}-x",  # a field whose name normalising would change
        kind="cluster_environment",
        name_parameters={"bits_per": ["2", "4"]},
    )
    with pytest.raises(pr.PluginNotFoundError, match=r"'bits-\{bits_per\}-x' takes bits_per"):
        zstd.get("bits-3-x")
    with pytest.raises(pr.PluginNotFoundError) as info:
        zstd.get("codec-zip")
    assert "'codec-{codec}' takes codec one of 'gzip', 'bz2' or 'lzma', not 'zip'" in str(
        info.value
    )
    assert "codec-gzip" in info.value.suggestions


def test_load_names_what_was_asked_then_the_record(registry: Registry) -> None:
    registry.register(
        StaticEnvironment,
        name="zstd-{level}",
        kind="cluster_environment",
        name_parameters={"level": ["1", "3"]},
        aliases=["zstd"],
        requires=("surely-not-installed-lib-xyz",),
    )
    with pytest.raises(pr.PluginUnavailableError) as info:
        registry.load("zstd")
    assert "plugin 'zstd' ('zstd-{level}')" in str(info.value)
    with pytest.raises(pr.PluginUnavailableError) as info:
        registry.load("zstd-3")
    assert "plugin 'zstd-3' ('zstd-{level}')" in str(info.value)


def test_find_gives_a_named_tuple(registry: Registry) -> None:
    registry.register(StaticEnvironment, name="static-env", kind="cluster_environment")
    match = registry.find("static_env")
    record, parameters, is_alias, spec = match
    assert match.record is record and record.name == "static-env"
    assert (match.parameters, match.is_alias) == (parameters, is_alias) == ({}, False)
    assert spec is not None and spec.name == "static-env" and match.spec == spec
    assert match == (record, {}, False, spec) and isinstance(match, tuple)
    assert match._fields == ("record", "parameters", "is_alias", "spec")
    assert match._asdict() == dict(zip(match._fields, match, strict=True))
    assert match._replace(is_alias=True) == (record, {}, True, spec)
    with pytest.raises(ValueError, match="no field"):
        match._replace(score=1)
    assert repr(match).startswith("Match(record=PluginInfo(")


def test_entry_point_ref_from_its_list() -> None:
    from plugin_registry.records import EntryPointRef

    ref = EntryPointRef("acme", "1.0", "acme", "acme.registration", None)
    again = EntryPointRef.from_list(ref.to_list())
    assert again == ref and hash(again) == hash(ref) and again.key == ref.key == "acme:acme"
    with pytest.raises(ValueError, match="5 values"):
        EntryPointRef.from_list(["acme", "1.0"])


def test_names_two_packages_share_are_found_whatever_the_records_order() -> None:
    from plugin_registry.cache import may_share_names, providers_of

    def record(name: str, dist: str | None, kind: str = "precision") -> PluginInfo:
        return PluginInfo(name=name, kind=kind, target="m:f", distribution=dist)  # type: ignore[arg-type]

    alone = [record("a", "one"), record("b", "two"), record("a", "two", "checkpoint_io")]
    assert not may_share_names(alone)
    assert all(len(who) == 1 for who in providers_of(alone).values())
    shared = [record("x", "one"), record("a", "one"), record("a", None)]
    assert may_share_names(shared) and may_share_names(shared[::-1])
    assert providers_of(shared)["precision/a"] == {"one", "<in-process>"}
