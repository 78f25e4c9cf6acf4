"""Registry plugins inside Hugging Face Accelerate (plugin_registry.accelerate).

Precision against Accelerate's own mixed precision, checkpoints through the named
checkpoint IO (exact resume, SIGKILL mid-save), names, refusals. The launcher tests
(srun, mpirun, torchrun without ``accelerate launch``) are in test_launchers.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin_registry.errors import CheckpointError
from tests._support.errors import raises
from tests._support.support import REPO, missing_library

if missing_library("accelerate"):
    pytest.skip(str(missing_library("accelerate")), allow_module_level=True)

from accelerate import Accelerator as AccelerateAccelerator
from accelerate.state import AcceleratorState, GradientState

import plugin_registry as pr
from plugin_registry import Registry
from plugin_registry.accelerate import Accelerator
from tests._support.quantizer import install_rowwise

pytestmark = pytest.mark.usefixtures("no_launcher_env", "fresh_state")


@pytest.fixture
def fresh_state() -> Iterator[None]:
    """Accelerate keeps one state per process; each test starts without one."""
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def fresh() -> None:
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def model_and_data(seed: int = 0, dropout: float = 0.0) -> tuple[torch.nn.Module, list[Any]]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(16, 64), torch.nn.GELU(), torch.nn.Dropout(dropout), torch.nn.Linear(64, 4)
    )
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(8, 16, generator=g), torch.randn(8, 4, generator=g)) for _ in range(8)]
    return model, data


def train(
    make: Callable[[], Any], steps: int = 8, accumulate: int = 1, clip: float | None = 1.0
) -> list[float]:
    fresh()
    accelerator = make()
    model, data = model_and_data()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    losses = []
    for x, y in data[:steps]:
        with accelerator.accumulate(model):
            loss = torch.nn.functional.mse_loss(model(x), y)
            accelerator.backward(loss)
            if clip is not None and accelerator.sync_gradients:
                accelerator.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
        losses.append(loss.item())
    return losses


# -- precision -----------------------------------------------------------------


@pytest.mark.parametrize("accumulate", [1, 2])
def test_bf16_mixed_trains_as_accelerates_own_bf16(accumulate: int) -> None:
    def theirs() -> Any:
        return AccelerateAccelerator(mixed_precision="bf16", gradient_accumulation_steps=accumulate)

    def ours() -> Any:
        return Accelerator(plugins=["bf16-mixed"], gradient_accumulation_steps=accumulate)

    expected = train(theirs, accumulate=accumulate)
    got = train(ours, accumulate=accumulate)
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-7)
    # ... and differs from float32 training, so the plugin did cast.
    plain = train(lambda: AccelerateAccelerator(gradient_accumulation_steps=accumulate))
    assert plain != pytest.approx(got, rel=1e-6, abs=1e-7)


class Probe(torch.nn.Linear):
    """A Linear that notes the dtype its matmul computes in."""

    def __init__(self) -> None:
        super().__init__(4, 4)
        self.seen: list[torch.dtype] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        self.seen.append(out.dtype)
        return out


def test_the_plugin_casts_and_accelerate_does_not_cast_twice() -> None:
    accelerator = Accelerator(precision="bf16-mixed")
    assert accelerator.state.mixed_precision == "no"  # Accelerate's own autocast is off
    assert accelerator.mixed_precision == "bf16"  # what code reading it sees runs
    model = accelerator.prepare(Probe())
    out = model(torch.randn(2, 4))
    assert model.seen == [torch.bfloat16] and out.dtype == torch.float32  # back in float32
    with accelerator.autocast():
        assert torch.mm(torch.randn(2, 2), torch.randn(2, 2)).dtype == torch.bfloat16
    unwrapped = accelerator.unwrap_model(model, keep_fp32_wrapper=False)
    assert unwrapped(torch.randn(2, 4)).dtype == torch.float32
    assert "_original_forward" not in unwrapped.__dict__


def test_accelerates_own_mixed_precision_strings_still_work() -> None:
    accelerator = Accelerator(mixed_precision="bf16")
    assert accelerator.precision_plugin is None
    assert accelerator.mixed_precision == "bf16" == accelerator.state.mixed_precision
    with accelerator.autocast():
        assert torch.mm(torch.randn(2, 2), torch.randn(2, 2)).dtype == torch.bfloat16


def test_precision_auto_is_the_resolvers_choice_for_this_machine() -> None:
    accelerator = Accelerator(precision="auto")
    resolution = accelerator.resolution
    assert resolution is not None
    assert accelerator.precision_plugin is not None
    assert accelerator.precision_plugin.precision == resolution.precision.name  # type: ignore[attr-defined]
    assert "precision" in resolution.explain()


def test_16_mixed_on_the_cpu_becomes_bf16_mixed_as_in_lightning() -> None:
    with pytest.warns(pr.PluginRegistryWarning, match="bf16-mixed"):
        accelerator = Accelerator(precision="16-mixed", cpu=True)
    assert accelerator.precision_plugin.precision == "bf16-mixed"  # type: ignore[union-attr]


def test_a_16_mixed_plugin_steps_through_its_scaler_and_skips_non_finite_steps() -> None:
    accelerator = Accelerator(plugins=[pr.load("16-mixed", device="cpu")])
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    scaler = accelerator.precision_plugin.scaler  # type: ignore[union-attr]
    before = [p.detach().clone() for p in model.parameters()]
    accelerator.backward(model(torch.randn(3, 4)).sum() * float("inf"))
    optimizer.step()
    assert accelerator.optimizer_step_was_skipped
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    optimizer.zero_grad()
    scale = scaler.get_scale()
    assert scale == 65536.0 / 2  # the skipped step halved it
    # Small enough that the scaled float16 gradients stay finite at the halved scale.
    accelerator.backward(model(torch.randn(3, 4) * 1e-3).sum() * 1e-3)
    accelerator.clip_grad_norm_(model.parameters(), 1.0)  # unscales through the plugin
    optimizer.step()
    assert not accelerator.optimizer_step_was_skipped
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert scaler.get_scale() == scale  # a finite step keeps the scale (growth after 2000)


# -- names and refusals ----------------------------------------------------------


def test_a_misspelt_name_gets_did_you_mean() -> None:
    with pytest.raises(pr.PluginNotFoundError, match="bf16-mixed") as info:
        Accelerator(plugins=["bf16-mixd"])
    assert "bf16-mixed" in info.value.suggestions


def test_a_precision_plugin_made_for_lightnings_fsdp_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match=r"made for Lightning's fsdp strategy.*fsdp plugin"):
        Accelerator(plugins=["fsdp-bf16-mixed"])


def test_lightnings_own_plugin_is_refused_with_the_way_out() -> None:
    lightning = pytest.importorskip("lightning.fabric.plugins")
    with pytest.raises(TypeError, match=r"Lightning's plugins.*name the registry's plugin"):
        Accelerator(plugins=[lightning.MixedPrecision("bf16-mixed", "cpu")])


def test_two_precisions_and_a_clash_with_mixed_precision_are_refused() -> None:
    with pytest.raises(ValueError, match="two precision plugins"):
        Accelerator(plugins=["bf16-mixed", "32-true"])
    with pytest.raises(ValueError, match=r"mixed_precision='fp16'.*give one"):
        Accelerator(plugins=["bf16-mixed"], mixed_precision="fp16")
    with pytest.raises(ValueError, match="give one"):
        Accelerator(plugins=["bf16-mixed"], precision="auto")


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    """A third party's quantizer (no bitsandbytes), installed as a package would be."""
    return install_rowwise(tmp_path, monkeypatch)


def run_quantized(make: Callable[[], Any], resume_from: Path | None, save_to: Path | None) -> Any:
    """Train 3 steps (after loading ``resume_from``), save to ``save_to``; the losses."""
    fresh()
    accelerator = make()
    model, data = model_and_data(seed=7 if resume_from else 0)
    optimizer = torch.optim.AdamW([p for p in model.parameters()], lr=1e-2)
    model, optimizer = accelerator.prepare(model, optimizer)
    if resume_from is not None:
        accelerator.load_state(str(resume_from))
    losses = []
    for x, y in data[:3]:
        loss = torch.nn.functional.mse_loss(model(x), y)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    if save_to is not None:
        accelerator.save_state(str(save_to))
    return losses, accelerator.unwrap_model(model).state_dict()


def check_quantized_resume(make: Callable[[], Any], tmp_path: Path) -> None:
    run_quantized(make, None, tmp_path / "a")
    expected, weights = run_quantized(make, tmp_path / "a", None)
    got, resumed = run_quantized(make, tmp_path / "a", None)
    assert got == expected
    assert resumed.keys() == weights.keys()
    assert all(torch.equal(resumed[k], weights[k]) for k in weights)


def test_a_third_party_quantizer_by_name_trains_and_resumes(
    third_party: Registry, tmp_path: Path
) -> None:
    def make() -> Any:
        return Accelerator(plugins=["rowwise-int8", "torch"], registry=third_party)

    accelerator = make()
    model = accelerator.prepare(torch.nn.Sequential(torch.nn.Linear(4, 4)))
    assert type(accelerator.unwrap_model(model)[0]).__name__ == "RowwiseInt8Linear"
    check_quantized_resume(make, tmp_path)


@pytest.mark.needs("bitsandbytes")
@pytest.mark.parametrize("mode", ["nf4", "int8"])
def test_bitsandbytes_trains_and_resumes_exactly(mode: str, tmp_path: Path) -> None:
    def make() -> Any:
        return Accelerator(plugins=[f"bitsandbytes-{mode}", "torch"])

    check_quantized_resume(make, tmp_path)


# -- checkpoints -----------------------------------------------------------------


class Counter:
    """An object registered for checkpointing, as Accelerate documents."""

    def __init__(self) -> None:
        self.seen = 0

    def state_dict(self) -> dict[str, Any]:
        return {"seen": self.seen, "history": [1.5, float("inf")], "pair": (1, "a")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        assert state["history"] == [1.5, float("inf")] and state["pair"] == (1, "a")
        self.seen = state["seen"]


def session(io: str, directory: Path, load: bool, steps: int = 4) -> dict[str, Any]:
    """A run with dropout and a scheduler: ``steps`` steps after an optional load."""
    fresh()
    accelerator = Accelerator(plugins=[io])
    model, data = model_and_data(seed=5 if load else 0, dropout=0.3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    counter = Counter()
    accelerator.register_for_checkpointing(counter)
    if load:
        accelerator.load_state(str(directory))
    else:
        for x, y in data[:steps]:  # the steps before the checkpoint
            torch.nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            counter.seen += 1
            accelerator.step += 1
        accelerator.save_state(str(directory))
        accelerator.wait_for_everyone()
        if hasattr(accelerator.checkpoint_io, "wait"):
            accelerator.checkpoint_io.wait()
    losses = []
    for x, y in data[steps:]:
        loss = torch.nn.functional.mse_loss(model(x), y)
        accelerator.backward(loss)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return {
        "losses": losses,
        "weights": {k: v.clone() for k, v in accelerator.unwrap_model(model).state_dict().items()},
        "lr": scheduler.get_last_lr(),
        "moments": [s["exp_avg"].clone() for s in optimizer.optimizer.state.values()],
        "draw": torch.rand(3),
        "seen": counter.seen,
        "step": accelerator.step,
    }


@pytest.mark.parametrize(
    "io", ["torch", "async", pytest.param("safetensors", marks=pytest.mark.needs("safetensors"))]
)
def test_save_state_resumes_exactly_through_the_named_io(io: str, tmp_path: Path) -> None:
    first = session(io, tmp_path / "ckpt", load=False)
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == ["plugin_registry_state.ckpt"], "one checkpoint: all or nothing"
    resumed = session(io, tmp_path / "ckpt", load=True)
    assert resumed["losses"] == first["losses"]  # dropout draws the same masks: RNG restored
    assert all(torch.equal(resumed["weights"][k], v) for k, v in first["weights"].items())
    assert resumed["lr"] == first["lr"]
    assert all(torch.equal(a, b) for a, b in zip(resumed["moments"], first["moments"], strict=True))
    assert torch.equal(resumed["draw"], first["draw"])
    assert (resumed["seen"], resumed["step"]) == (first["seen"], first["step"]) == (4, 4)


def test_the_state_loads_weights_only(tmp_path: Path) -> None:
    session("torch", tmp_path / "ckpt", load=False)
    # torch.load with weights_only=True reads it: no pickled objects inside.
    loaded = torch.load(tmp_path / "ckpt" / "plugin_registry_state.ckpt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in loaded.values())


@pytest.mark.slow
@pytest.mark.parametrize(
    "io", ["torch", "async", pytest.param("safetensors", marks=pytest.mark.needs("safetensors"))]
)
def test_a_kill_mid_save_leaves_the_previous_state(io: str, tmp_path: Path) -> None:
    counts = kill_harness(tmp_path, "--io", io)
    print(f"SIGKILL during Accelerator.save_state ({io}): {counts}")
    assert counts["intact"] == counts["rounds"], counts
    assert counts["killed_inside"] >= 1, "no kill landed inside a save: the test proves nothing"


@pytest.mark.slow
def test_the_kill_harness_catches_accelerates_own_torn_saves(tmp_path: Path) -> None:
    counts = kill_harness(tmp_path, "--plain")
    print(f"SIGKILL during accelerate.Accelerator.save_state: {counts}")
    assert counts["corrupt"] + counts["mixed"] >= 1, counts


def kill_harness(tmp_path: Path, *args: str) -> dict[str, Any]:
    run = subprocess.run(
        [
            sys.executable,
            str(REPO / "tests" / "workers" / "accelerate_kill.py"),
            str(tmp_path / "state"),
            "20",
            "1234",
            *args,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    counts: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return counts


def test_accelerator_save_goes_through_the_io_and_a_failed_save_keeps_the_file(
    tmp_path: Path,
) -> None:
    accelerator = Accelerator(plugins=["torch"])
    path = tmp_path / "extra.pt"
    accelerator.save({"w": torch.ones(3)}, path)
    assert torch.equal(pr.load("torch").load_checkpoint(path)["w"], torch.ones(3))
    with pytest.raises(CheckpointError, match=r"extra\.pt"):
        accelerator.save({"w": torch.zeros(3), "f": lambda: None}, path)
    assert torch.equal(pr.load("torch").load_checkpoint(path)["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["extra.pt"]


def test_a_folder_accelerates_own_save_state_wrote_still_loads(tmp_path: Path) -> None:
    theirs = AccelerateAccelerator()
    model = theirs.prepare(torch.nn.Linear(3, 3))
    theirs.save_state(str(tmp_path / "theirs"))
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    fresh()
    ours = Accelerator(plugins=["torch"])
    torch.manual_seed(99)
    other = ours.prepare(torch.nn.Linear(3, 3))
    ours.load_state(str(tmp_path / "theirs"))
    assert all(torch.equal(other.state_dict()[k], v) for k, v in expected.items())


def test_missing_and_unsaveable_states_say_what_is_wrong(tmp_path: Path) -> None:
    accelerator = Accelerator(plugins=["torch"])
    accelerator.prepare(torch.nn.Linear(2, 2))
    with raises(CheckpointError, "not-found", match="does not exist"):
        accelerator.load_state(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no saved state"):
        accelerator.load_state(str(tmp_path / "empty"))

    class Odd:
        def state_dict(self) -> dict[str, Any]:
            return {"when": object()}

        def load_state_dict(self, state: dict[str, Any]) -> None: ...

    accelerator.register_for_checkpointing(Odd())
    with pytest.raises(CheckpointError, match=r"state\.custom\.0\.when is a builtins\.object"):
        accelerator.save_state(str(tmp_path / "odd"))
    assert not (tmp_path / "odd" / "plugin_registry_state.ckpt").exists()


def test_a_state_saved_with_other_objects_is_refused_by_count(tmp_path: Path) -> None:
    accelerator = Accelerator(plugins=["torch"])
    accelerator.prepare(torch.nn.Linear(2, 2))
    accelerator.save_state(str(tmp_path / "one"))
    fresh()
    other = Accelerator(plugins=["torch"])
    other.prepare(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"holds 1 models.*prepared 2"):
        other.load_state(str(tmp_path / "one"))


def test_without_a_checkpoint_io_save_state_is_accelerates_own(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        accelerator = Accelerator(plugins=["bf16-mixed"])
    accelerator.prepare(torch.nn.Linear(2, 2))
    accelerator.save_state(str(tmp_path / "own"))
    assert (tmp_path / "own" / "model.safetensors").exists()


# -- hostile state files ---------------------------------------------------------


def skeleton(text: str | bytes) -> dict[str, torch.Tensor]:
    raw = text.encode() if isinstance(text, str) else text
    return {"skeleton": torch.frombuffer(bytearray(raw), dtype=torch.uint8)}


@pytest.mark.parametrize(
    ("checkpoint", "says"),
    [
        ({"w": torch.ones(2)}, "not a state written by"),
        (skeleton(b"\xff\xfe not json"), "damaged"),
        (skeleton("[" * 100_000 + "]" * 100_000), "damaged"),
        (skeleton('{"format": 2, "state": {}}'), "format 2"),
        (skeleton('{"format": 1, "state": {"step": 1}}'), "has fields"),
        (skeleton('{"format": 1, "state": {"__tensor__": "t9"}}'), "lacks tensor 't9'"),
        (skeleton('{"format": 1, "state": {"__float__": "many"}}'), "damaged"),
        (skeleton('{"format": 1, "state": {"__int__x": 1}}'), "damaged"),
    ],
)
def test_a_hostile_state_is_refused_by_name(checkpoint: dict[str, Any], says: str) -> None:
    from plugin_registry.accelerate import state

    with raises(CheckpointError, "unreadable", match=re.escape(says)):
        state.decode(checkpoint, "/x/plugin_registry_state.ckpt")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["__tensor__", "__tuple__", "__float__", "__int__1", "step", "rng"]),
            inner,
            max_size=3,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_any_skeleton_loads_or_is_unreadable(value: Any) -> None:
    from plugin_registry.accelerate import state

    text = json.dumps({"format": 1, "state": value})
    try:
        decoded = state.decode({**skeleton(text), "t0": torch.ones(1)}, "ckpt")
    except pr.CheckpointError as exc:
        assert exc.reason == "unreadable", exc
        return
    assert set(decoded) == set(state.FIELDS)


def test_encode_refuses_what_is_no_plain_data_and_keeps_what_is() -> None:
    from plugin_registry.accelerate import state

    w = torch.ones(3)
    original = {
        "step": 3,
        "tied": [w, w],
        "nested": {"a": (1, 2.5, float("-inf"), None, True), 7: "seven"},
    }
    encoded = state.encode(original, "ckpt")
    assert sum(isinstance(v, torch.Tensor) for v in encoded.values()) == 2  # w once + skeleton
    back = state.decode(encoded, "ckpt", check=False)
    assert back["nested"] == original["nested"] and back["step"] == 3
    assert back["tied"][0] is back["tied"][1]
    with pytest.raises(CheckpointError, match=r"state\.bad is a builtins\.set"):
        state.encode({"bad": {1}}, "ckpt")
