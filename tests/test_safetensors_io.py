"""The safetensors checkpoint IO: nested tensors round-trip, errors name the key, saves are
atomic (SIGKILL at random moments), loads map the file instead of copying it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from plugin_registry.errors import CheckpointError
from tests._support.errors import raises

pytest.importorskip("safetensors", reason="safetensors is not installed (the [safetensors] extra)")

import plugin_registry as pr
from builtin_plugins.checkpoint_io.safetensors_io import SafetensorsCheckpointIO
from tests._support.support import REPO


@pytest.fixture
def io() -> SafetensorsCheckpointIO:
    plugin = pr.load("safetensors")
    assert isinstance(plugin, SafetensorsCheckpointIO)
    return plugin


def _nested() -> dict[str, object]:
    g = torch.Generator().manual_seed(0)
    return {
        "model": {
            "w": torch.randn(64, 32, generator=g),
            "layer.0": {"b": torch.zeros(3, dtype=torch.bfloat16)},  # a key with the separator
        },
        "model.w": torch.arange(5),  # joins like model/w: told apart by the key paths
        "step": torch.tensor(7),
        "mask": torch.tensor([True, False]),
    }


def _same(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return False


def test_nested_tensors_and_metadata_round_trip(
    io: SafetensorsCheckpointIO, tmp_path: Path
) -> None:
    path = tmp_path / "c.safetensors"
    state = _nested()
    with pytest.raises(CheckpointError, match=r"two keys join to 'model\.w'"):
        io.save_checkpoint(state, path)  # the default separator cannot tell them apart
    other = SafetensorsCheckpointIO(separator="/")
    other.save_checkpoint(state, path, storage_options={"metadata": {"run": "7", "by": "me"}})
    assert _same(other.load_checkpoint(path), state)
    assert other.read_metadata(path) == {"run": "7", "by": "me"}
    del state["model.w"]
    io.save_checkpoint(state, path)
    assert _same(io.load_checkpoint(path, map_location=None), state)
    assert io.read_metadata(path) == {}
    # a plain safetensors reader sees ordinary flat names
    from safetensors.torch import load_file

    assert set(load_file(path)) == {"model.w", "model.layer.0.b", "step", "mask"}


def test_errors_name_the_key_and_leave_the_previous_file(
    io: SafetensorsCheckpointIO, tmp_path: Path
) -> None:
    path = tmp_path / "c.safetensors"
    io.save_checkpoint({"w": torch.ones(2)}, path)
    before = path.read_bytes()
    w = torch.randn(4, 4)
    cases = [
        ({"opt": {"lr": 0.1}}, r"'opt\.lr' is a float, and safetensors holds tensors only"),
        ({"m": {1: torch.ones(1)}}, r"key 1 under 'm' is not a string"),
        ({"a": w, "b": w.t()}, r"'a' and 'b' share memory"),
    ]
    for state, message in cases:
        with pytest.raises(CheckpointError, match=message):
            io.save_checkpoint(state, path)
        assert path.read_bytes() == before
    with pytest.raises(CheckpointError, match="metadata must map strings to strings"):
        io.save_checkpoint({"w": w}, path, storage_options={"metadata": {"n": 1}})
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_load_errors_are_typed_and_say_what(io: SafetensorsCheckpointIO, tmp_path: Path) -> None:
    with raises(CheckpointError, "not-found") as missing:
        io.load_checkpoint(tmp_path / "nope.safetensors")
    assert isinstance(missing.value, FileNotFoundError)
    garbage = tmp_path / "g.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with raises(CheckpointError, "unreadable", match="not a readable safetensors file"):
        io.load_checkpoint(garbage)
    torn = tmp_path / "t.safetensors"
    io.save_checkpoint({"w": torch.ones(1000)}, torn)
    torn.write_bytes(torn.read_bytes()[:200])
    with raises(CheckpointError, "unreadable"):
        io.load_checkpoint(torn)
    with raises(CheckpointError, "unreadable", match="is a directory"):
        io.load_checkpoint(tmp_path)
    io.remove_checkpoint(torn)
    io.remove_checkpoint(torn)  # missing: not an error
    assert not torn.exists()


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc (Linux)")
def test_a_load_maps_the_file_instead_of_copying_it(
    io: SafetensorsCheckpointIO, tmp_path: Path
) -> None:
    path = tmp_path / "big.safetensors"
    io.save_checkpoint({"w": torch.arange(4_000_000, dtype=torch.float32)}, path)
    loaded = io.load_checkpoint(path)
    maps = Path("/proc/self/maps").read_text()
    assert str(path) in maps, "the tensor is not backed by the file"
    assert loaded["w"][123_456].item() == 123_456.0


def test_sigkill_at_random_moments_leaves_old_or_new(tmp_path: Path) -> None:
    rounds = int(os.environ.get("CHECKPOINT_KILL_ROUNDS", "20"))
    run = subprocess.run(
        [
            sys.executable,
            str(REPO / "tests" / "workers" / "kill_during_save.py"),
            str(tmp_path),
            str(rounds),
            "4321",
            "--io",
            "safetensors",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    counts = json.loads(run.stdout.strip().splitlines()[-1])
    assert counts["intact"] == rounds and counts["corrupt"] == 0
    assert counts["leftover_temporaries"] >= 1, "no kill landed inside a save: test proves nothing"
    assert counts["temporaries_after_next_save"] == 0


def test_a_fifo_at_the_path_is_refused_not_waited_on(tmp_path: Path) -> None:
    """In a subprocess: safetensors opens the file holding the GIL, so a blocked open
    froze the whole interpreter (a thread with a timeout could not even fail the test)."""
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    code = """
import json, sys
from builtin_plugins.checkpoint_io.safetensors_io import SafetensorsCheckpointIO
io = SafetensorsCheckpointIO()
out = []
for call in (io.load_checkpoint, io.read_metadata):
    try:
        call(sys.argv[1])
        out.append(None)
    except Exception as exc:
        out.append([type(exc).__name__, getattr(exc, "reason", None), str(exc)])
print(json.dumps(out))
"""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, str(fifo)],
            capture_output=True, text=True, timeout=60, cwd=REPO,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("loading a FIFO as a safetensors file hung")
    for name, reason, message in json.loads(proc.stdout.splitlines()[-1]):
        assert reason == "unreadable" and "not a regular file" in message, name


_KEYS = "plugin_registry.keys"


def _with_keys(path: Path, tensors: dict, keys: str) -> Path:
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata={_KEYS: keys})
    return path


@pytest.mark.parametrize(
    "keys",
    [
        "not json",
        "[1, 2]",
        '{"w": 5}',
        '{"w": []}',
        '{"w": [1]}',
        '{"w": "w"}',
        "[" * 100_000,  # nested past the recursion limit
    ],
    ids=["text", "list", "int", "empty-path", "int-key", "str-path", "deep"],
)
def test_a_damaged_key_header_is_the_ios_own_error(tmp_path: Path, keys: str) -> None:
    """It escaped as JSONDecodeError, AttributeError, IndexError, TypeError, RecursionError."""
    from plugin_registry.errors import CheckpointError

    path = _with_keys(tmp_path / "m.safetensors", {"w": torch.ones(2)}, keys)
    with raises(CheckpointError, "unreadable", match=r"plugin_registry\.keys"):
        SafetensorsCheckpointIO().load_checkpoint(path)


@pytest.mark.parametrize(
    "keys",
    ['{"a": ["x"], "b": ["x"]}', '{"a": ["x"], "b": ["x", "y"]}', '{"a": ["x", "y"], "b": ["x"]}'],
    ids=["same-path", "under-a-tensor", "over-a-dict"],
)
def test_colliding_key_paths_are_an_error_not_a_lost_tensor(tmp_path: Path, keys: str) -> None:
    from plugin_registry.errors import CheckpointError

    tensors = {"a": torch.ones(2), "b": torch.zeros(2)}
    path = _with_keys(tmp_path / "m.safetensors", tensors, keys)
    with raises(CheckpointError, "unreadable", match="claim"):
        SafetensorsCheckpointIO().load_checkpoint(path)


def test_mmap_false_copies_so_a_later_truncation_cannot_kill_the_process(tmp_path: Path) -> None:
    """Mapped tensors die with SIGBUS when the file is truncated under them: mmap=False
    reads the file into memory instead."""
    path = tmp_path / "m.safetensors"
    state = {"w": torch.arange(1 << 16, dtype=torch.float32)}
    for io, kwargs in ((SafetensorsCheckpointIO(mmap=False), {}),
                       (SafetensorsCheckpointIO(), {"mmap": False})):  # fmt: skip
        io.save_checkpoint(state, path)
        loaded = io.load_checkpoint(path, **kwargs)
        os.truncate(path, 0)
        assert torch.equal(loaded["w"], state["w"])  # read after the truncation
    with pytest.raises(TypeError):
        SafetensorsCheckpointIO(mmap="no")  # type: ignore[arg-type]
