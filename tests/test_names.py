from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin_registry.errors import ConfigurationError
from plugin_registry.names import (
    NAME_RE,
    Spec,
    did_you_mean,
    expand,
    normalize_distribution,
    normalize_name,
    parse_spec,
)
from tests._support.errors import raises

words = st.from_regex(r"[a-z0-9][a-z0-9]{0,8}", fullmatch=True)
names = st.lists(words, min_size=1, max_size=4).map("-".join)


@given(names, st.lists(st.sampled_from(["upper", "underscore", "pad"]), max_size=3))
def test_spellings_normalise_to_the_same_name(name: str, changes: list[str]) -> None:
    spelled = name
    for change in changes:
        if change == "upper":
            spelled = spelled.upper()
        elif change == "underscore":
            spelled = spelled.replace("-", "_")
        else:
            spelled = f"  {spelled} "
    assert normalize_name(spelled) == name
    assert parse_spec(spelled) == Spec(None, None, name)


@given(
    st.sampled_from(["precision", "checkpoint_io", "Checkpoint-IO", "cluster_environment"]),
    names,
    names,
)
def test_qualified_forms_round_trip(kind: str, dist: str, name: str) -> None:
    spec = parse_spec(f"{kind}/{dist}:{name}")
    assert spec.kind == kind.lower().replace("-", "_")
    assert spec.distribution == dist and spec.name == name
    assert parse_spec(str(spec)) == spec


def test_distribution_names_follow_pep_503() -> None:
    assert normalize_distribution("Acme_Plugins.Extra") == "acme-plugins-extra"
    assert parse_spec("Acme_Plugins:X").distribution == "acme-plugins"


@pytest.mark.parametrize("bad", ["", "a b", "-lead", "x/", "bogus/name", ":name", "n@me", 3])
def test_malformed_requests_are_clear_errors(bad: object) -> None:
    with raises(ConfigurationError, "name") as info:
        parse_spec(bad)  # type: ignore[arg-type]
    assert "plugin" in str(info.value)


def test_unknown_kind_suggests_the_right_one() -> None:
    with raises(ConfigurationError, "name", match="Did you mean 'precision'"):
        parse_spec("precison/xla")


def test_separate_kind_must_agree_with_the_spelled_one() -> None:
    assert parse_spec("xla", "precision").kind == "precision"
    with raises(ConfigurationError, "name", match="names kind 'precision'"):
        parse_spec("precision/xla", "checkpoint_io")


def test_templates_expand_to_every_choice_with_parameters() -> None:
    out = list(expand("bnb-{mode}", ["quant-{mode}", "bnb"], {"mode": ["nf4", "Int8"]}))
    assert [(e.name, e.parameters, e.is_alias) for e in out] == [
        ("bnb-nf4", {"mode": "nf4"}, False),
        ("bnb-int8", {"mode": "Int8"}, False),
        ("quant-nf4", {"mode": "nf4"}, True),
        ("quant-int8", {"mode": "Int8"}, True),
        ("bnb", {}, True),
    ]


@given(st.dictionaries(st.sampled_from("abc"), st.lists(words, min_size=1, max_size=3), min_size=1))
def test_every_expansion_is_a_valid_name_and_parses_back(choices: dict[str, list[str]]) -> None:
    template = "p-" + "-".join("{" + k + "}" for k in sorted(choices))
    expanded = list(expand(template, [], choices))
    expected = 1
    for options in choices.values():
        expected *= len(options)
    assert len(expanded) == expected
    for e in expanded:
        assert NAME_RE.match(e.name)
        assert parse_spec(e.name).name == e.name
        assert set(e.parameters) == set(choices)


def test_did_you_mean() -> None:
    assert did_you_mean("slurn", ["slurm", "lsf", "mpi"]) == ". Did you mean 'slurm'?"
    assert did_you_mean("zzzz", ["slurm"]) == ""
