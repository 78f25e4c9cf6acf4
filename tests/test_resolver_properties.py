"""Properties of the resolver over generated hardware and settings (hypothesis)."""

from __future__ import annotations

import random
import warnings
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.specifiers import SpecifierSet
from packaging.version import Version

import plugin_registry as pr
from plugin_registry.errors import PluginRegistryWarning
from plugin_registry.requirements import unmet
from plugin_registry.resolver import Resolver
from plugin_registry.resolver.hardware import Hardware
from plugin_registry.resolver.preferences import Preferences
from plugin_registry.resolver.resolution import Resolution
from plugin_registry.resolver.settings import PRECISIONS, SHORT_PRECISIONS
from tests._support.resolver_cases import ALL_LIBRARIES, GPUS, machine

_PRECISIONS = [
    None,
    16,
    32,
    64,
    *SHORT_PRECISIONS,
    *PRECISIONS,
    "bitsandbytes-nf4",
    "bitsandbytes-int8",
]
_STRATEGIES = [
    "auto",
    "ddp",
    "dp",
    "fsdp",
    "deepspeed",
    "deepspeed_stage_3",
    "xla",
    "xla_fsdp",
    "single_device",
    "model_parallel",
]
_PLUGINS = ["async", "slurm", "kubeflow", "checkpoint_io/xla", "bitsandbytes-fp4"]


@st.composite
def hardware(draw: Any) -> Hardware:
    return machine(
        cuda=draw(st.integers(0, 3)),
        gpu=draw(st.sampled_from(sorted(GPUS))),
        mps=draw(st.booleans()),
        xla=draw(st.integers(0, 2)),
        missing=tuple(draw(st.sets(st.sampled_from(sorted(ALL_LIBRARIES))))),
        cores=draw(st.integers(1, 64)),
    )


@st.composite
def job(draw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "precision": draw(st.sampled_from(_PRECISIONS)),
        "accelerator": draw(st.sampled_from(["auto", "cpu", "cuda", "gpu", "mps", "tpu"])),
        "strategy": draw(st.sampled_from(_STRATEGIES)),
        "devices": draw(st.sampled_from(["auto", 1, 2, -1, [0]])),
        "num_nodes": draw(st.integers(1, 3)),
    }
    out["plugins"] = draw(st.lists(st.sampled_from(_PLUGINS), max_size=2, unique=True))
    return out


@pytest.fixture(scope="module")
def records() -> list[pr.PluginInfo]:
    return pr.list_plugins()


def _run(records: list[pr.PluginInfo], hw: Hardware, kw: dict[str, Any]) -> Resolution | str:
    resolver = Resolver(pr.default_registry(), records, hw, Preferences())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PluginRegistryWarning)
            return resolver.resolve(resolver.settings(**kw))
    except pr.PluginRegistryError as exc:
        return f"{type(exc).__name__}: {exc}"


def _fingerprint(result: Resolution | str) -> Any:
    if isinstance(result, str):
        return result
    return (
        result.names(),
        {k: [(c.name, c.accepted, c.reasons) for c in v] for k, v in result.candidates.items()},
        result.settings.to_dict(),
    )


pytestmark = pytest.mark.usefixtures("no_launcher_env")


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(hw=hardware(), kw=job(), seed=st.integers(0, 2**16))
def test_resolution_is_deterministic_and_sound(
    records: list[pr.PluginInfo], hw: Hardware, kw: dict[str, Any], seed: int
) -> None:
    first = _run(records, hw, kw)
    shuffled = list(records)
    random.Random(seed).shuffle(shuffled)
    # the same answer (and the same ranking) whatever order discovery returned
    assert _fingerprint(_run(shuffled, hw, kw)) == _fingerprint(first)
    if isinstance(first, str):
        assert first  # an error always says something
        return
    accel = first.settings.accelerator
    for choice in first.choices:
        record = choice.record
        if record is None:
            continue
        # never a plugin whose requirements fail on that hardware
        assert unmet(record.requires, record.install_hint, hw.version) == ""
        assert accel in record.accelerators or "any" in record.accelerators
        for key, spec in record.constraints.items():
            for device in hw.devices_of(accel)[: first.settings.devices]:
                assert SpecifierSet(spec).contains(Version(device.properties[key]))
        assert choice.name in [c.name for c in first.candidates[choice.kind] if c.accepted]
