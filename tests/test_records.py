from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin_registry import PluginInfo
from plugin_registry.errors import ConfigurationError
from plugin_registry.records import validate_record
from tests._support.errors import raises


def record(**kw: object) -> PluginInfo:
    base: dict[str, object] = {"name": "x", "kind": "precision", "target": "pkg.mod:Cls"}
    return PluginInfo(**{**base, **kw})  # type: ignore[arg-type]


def test_records_are_frozen_and_hashable() -> None:
    r = record(parameters={"a": 1}, aliases=["y"])
    assert r.aliases == ("y",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.name = "z"  # type: ignore[misc]
    with pytest.raises(TypeError):
        r.parameters["a"] = 2  # type: ignore[index]
    assert len({r, record(parameters={"a": 1}, aliases=["y"])}) == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"target": "nocolon"}, "not of the form"),
        ({"kind": "checkpoint_io"}, "return it from plugin_registry_checkpoint_io_plugins"),
        ({"kind": "optimizer"}, "unknown kind 'optimizer'"),
        ({"name": "has space"}, "not a valid plugin name"),
        ({"name": ""}, "non-empty"),
        ({"name": "q-{bits}"}, "have no choices"),
        ({"priority": "high"}, "not an integer"),
        ({"priority": True}, "not an integer"),
        ({"parameters": {"f": object()}}, "is not a plain value"),
        ({"accelerators": ("CUDA!",)}, "not a lowercase word"),
        ({"requires": ("",)}, "is not a string"),
        ({"name": "q-{bits}", "name_parameters": {"bits": []}}, "non-empty list"),
        ({"name": "q-{bits}", "name_parameters": {"bits": ["a b"]}}, "not valid in a name"),
    ],
)
def test_invalid_records_name_the_problem(fields: dict[str, object], message: str) -> None:
    with raises(ConfigurationError, "record", match=message):
        validate_record(record(**fields), "precision")


def test_non_records_are_rejected() -> None:
    with raises(
        ConfigurationError, "record", match=r"expected a plugin_registry\.PluginInfo, got dict"
    ):
        validate_record({"name": "x"}, "precision")


json_values = st.recursive(
    # What JSON carries between languages: 64-bit integers (larger ones are refused).
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(
    params=st.dictionaries(st.text(min_size=1, max_size=5), json_values, max_size=4),
    priority=st.integers(-100, 100),
    aliases=st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,6}", fullmatch=True), max_size=3),
)
def test_dict_round_trip_is_exact(params: dict, priority: int, aliases: list[str]) -> None:
    import json

    r = record(
        parameters=params,
        priority=priority,
        aliases=aliases,
        name="m-{v}",
        name_parameters={"v": ["a", "b"]},
        requires=("torch>=2",),
        distribution="d",
        version="1",
    )
    validate_record(r, "precision")
    back = PluginInfo.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back == r


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "abc\n"},
        {"accelerators": ("cpu\n",)},
        {"name": "abc-{mode}", "name_parameters": {"mode": ("a", "b\n")}},
    ],
    ids=["name", "accelerator", "choice"],
)
def test_a_trailing_newline_is_not_a_valid_name(fields: dict) -> None:
    """A ``$`` regex matched before a final newline: such names were accepted."""
    with raises(ConfigurationError, "record"):
        validate_record(
            PluginInfo(**{"name": "abc", "kind": "precision", "target": "a.b:C", **fields}),
            "precision",
        )


def test_new_refuses_a_package_name_with_a_trailing_newline(tmp_path) -> None:
    from plugin_registry.scaffold import create

    with raises(ConfigurationError, "scaffold"):
        create("acme\n", tmp_path)
    assert list(tmp_path.iterdir()) == []
