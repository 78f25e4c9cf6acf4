"""The error surface: eight types with fields, and the standard bases a reason adds."""

from __future__ import annotations

import pickle
from pickle import UnpicklingError

import pytest

import plugin_registry as pr
from plugin_registry.errors import (
    CheckpointError,
    ClusterEnvironmentError,
    ConfigurationError,
    PluginNotFoundError,
    ResolutionError,
)

CHECKPOINT_BASES = {
    "failed": (),
    "not-found": (FileNotFoundError,),
    "incomplete": (FileNotFoundError,),
    "unreadable": (RuntimeError,),
    "unpicklable": (RuntimeError, UnpicklingError),
    "refused": (UnpicklingError,),
}
ENVIRONMENT_BASES = {
    "other": (RuntimeError,),
    "missing-variable": (RuntimeError, KeyError),
    "invalid-variable": (RuntimeError, ValueError),
    "settings-mismatch": (RuntimeError, ValueError),
    "missing-file": (RuntimeError, FileNotFoundError, ValueError),
}
ALL_BASES = (FileNotFoundError, RuntimeError, UnpicklingError, KeyError, ValueError)


@pytest.mark.parametrize(("reason", "bases"), CHECKPOINT_BASES.items())
def test_a_checkpoint_reason_gives_the_base_lightning_raises(
    reason: str, bases: tuple[type, ...]
) -> None:
    error = CheckpointError(f"no good: {reason}", "/ckpt/last.pt", reason=reason)
    assert isinstance(error, CheckpointError) and isinstance(error, pr.PluginRegistryError)
    assert {b for b in ALL_BASES if isinstance(error, b)} == set(bases)
    assert (error.reason, error.path, str(error)) == (reason, "/ckpt/last.pt", f"no good: {reason}")
    if isinstance(error, FileNotFoundError):
        assert (error.filename, error.errno) == ("/ckpt/last.pt", 2)
    again = pickle.loads(pickle.dumps(error))  # a worker's error reaches its parent whole
    assert type(again) is type(error)
    assert (again.reason, again.path, str(again)) == (error.reason, error.path, str(error))


@pytest.mark.parametrize(("reason", "bases"), ENVIRONMENT_BASES.items())
def test_an_environment_reason_gives_the_base_lightning_raises(
    reason: str, bases: tuple[type, ...]
) -> None:
    error = ClusterEnvironmentError("RANK is not set; start it with torchrun", reason=reason)
    assert {b for b in ALL_BASES if isinstance(error, b)} == set(bases)
    # A KeyError's str() would quote the message; this one reads as written.
    assert str(error) == "RANK is not set; start it with torchrun"
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error) and again.reason == reason and str(again) == str(error)


def test_an_unknown_reason_keeps_the_plain_type() -> None:
    error = CheckpointError("odd", reason="something-new")
    assert type(error) is CheckpointError and error.reason == "something-new"


def test_a_subclass_of_a_public_error_stays_itself() -> None:
    class ThirdPartyError(CheckpointError):
        pass

    error = ThirdPartyError("theirs", "/p", reason="not-found")
    assert type(error) is ThirdPartyError and error.reason == "not-found"


class _Quota(CheckpointError):
    """A third party's error whose constructor takes other arguments."""

    def __init__(self, used: int) -> None:
        super().__init__(f"quota exceeded: {used} bytes", reason="failed")
        self.used = used


def test_a_subclass_with_its_own_constructor_pickles() -> None:
    again = pickle.loads(pickle.dumps(_Quota(7)))
    assert type(again) is _Quota and again.used == 7 and again.reason == "failed"
    assert str(again) == "quota exceeded: 7 bytes"


def test_fields_survive_pickling() -> None:
    lookup = PluginNotFoundError(
        "x", reason="conflict", name="slurm", kind="cluster_environment", providers=["a", "b"]
    )
    again = pickle.loads(pickle.dumps(lookup))
    assert (again.reason, again.name, again.kind, again.providers) == (
        "conflict",
        "slurm",
        "cluster_environment",
        ("a", "b"),
    )
    assert pickle.loads(pickle.dumps(ConfigurationError("x", subject="lock"))).subject == "lock"
    assert pickle.loads(pickle.dumps(ResolutionError("x", reason="lock-mismatch"))).reason == (
        "lock-mismatch"
    )


def test_each_lookup_failure_says_its_reason_and_suggests_what_it_says() -> None:
    with pytest.raises(PluginNotFoundError) as unknown:
        pr.get("bf16-mixd")
    assert unknown.value.reason == "unknown" and unknown.value.suggestions[0] == "bf16-mixed"
    assert "Did you mean 'bf16-mixed'" in str(unknown.value)
    registry = pr.Registry(block=["bf16-mixed"])
    with pytest.raises(PluginNotFoundError) as blocked:
        registry.get("bf16-mixed")
    assert blocked.value.reason == "blocked" and blocked.value.name == "bf16-mixed"
    with pytest.raises(ConfigurationError) as bad:
        pr.get("not a name!")
    assert bad.value.subject == "name" and isinstance(bad.value, ValueError)
