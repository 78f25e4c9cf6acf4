"""The sharded checkpoint IOs (`distributed`, `async-distributed`) on torch.distributed.checkpoint.

One process: round trips (nested values, non-string keys, loads into a template),
the commit marker (a failed or killed save leaves the previous checkpoint), safe
loads (DCP's pickled metadata and values), removal while a load reads, errors.
Under torchrun (slow): FSDP2-sharded training on 4 ranks, a rank SIGKILLed
mid-save, resumed on 2 and on 3 ranks with the loss trajectory of an
uninterrupted run; the async variant's errors and exit.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed.checkpoint as dcp

import plugin_registry as pr
from builtin_plugins.checkpoint_io.async_distributed_io import AsyncDistributedCheckpointIO
from builtin_plugins.checkpoint_io.distributed_io import MARKER, DistributedCheckpointIO
from plugin_registry.errors import CheckpointError, PluginRegistryWarning
from tests._support.errors import raises
from tests._support.support import REPO, free_port
from tests.workers.dcp_worker import digest


@pytest.fixture
def io() -> DistributedCheckpointIO:
    plugin = pr.load("distributed")
    assert type(plugin) is DistributedCheckpointIO
    return plugin


def _state() -> dict[Any, Any]:
    model = torch.nn.Linear(4, 3)
    optim = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 4)).sum().backward()
    optim.step()
    return {
        "model": model.state_dict(),
        "optim": optim.state_dict(),  # state keyed by int: DCP alone returns "0", "1"
        "epoch": 3,
        "names": ["a", "b"],
        "pair": (1, torch.ones(2)),
        "nested": {"x": {"y": torch.arange(5).to(torch.bfloat16)}},
        7: {1.5: torch.zeros(1), None: True},
    }


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return bool(a == b)


def _data_dirs(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name.startswith("data-"))


# -- round trips -----------------------------------------------------------------------------


def test_listed_and_loadable_by_name_and_alias() -> None:
    names = {r.name for r in pr.list_plugins() if r.kind == "checkpoint_io"}
    assert {"distributed", "async-distributed"} <= names
    assert type(pr.load("dcp")) is DistributedCheckpointIO
    assert type(pr.load("async-dcp")) is AsyncDistributedCheckpointIO


def test_nested_values_and_key_types_round_trip(
    io: DistributedCheckpointIO, tmp_path: Path
) -> None:
    state = _state()
    io.save_checkpoint(state, tmp_path / "ck")
    loaded = io.load_checkpoint(tmp_path / "ck")
    assert _same(loaded, state)
    # The optimizer takes its own state back: int keys restored, not "0"/"1".
    model = torch.nn.Linear(4, 3)
    optim = torch.optim.Adam(model.parameters())
    optim.load_state_dict(loaded["optim"])
    assert _same(optim.state_dict()["state"], state["optim"]["state"])


def test_empty_dicts_come_back(io: DistributedCheckpointIO, tmp_path: Path) -> None:
    """DCP drops empty dicts: a fresh optimizer's state came back without "state" (its
    load_state_dict raised KeyError), and {1: {}} made the checkpoint unloadable."""
    model = torch.nn.Linear(4, 3)
    fresh = torch.optim.Adam(model.parameters()).state_dict()
    state = {
        "optimizer_states": [fresh],
        "callbacks": {},
        "deep": {"a": {"b": {}}, 3: {}},
        "w": torch.ones(2),
    }
    io.save_checkpoint(state, tmp_path / "ck")
    loaded = io.load_checkpoint(tmp_path / "ck")
    assert _same(loaded, state)
    torch.optim.Adam(model.parameters()).load_state_dict(loaded["optimizer_states"][0])


@pytest.mark.parametrize(
    "value", [[{}, torch.ones(1)], [torch.ones(1), {}], [{"x": {}}, torch.ones(1)]]
)
def test_a_list_element_dcp_would_drop_is_refused(
    io: DistributedCheckpointIO, tmp_path: Path, value: list[Any]
) -> None:
    """DCP drops the element and shifts the list: the save succeeded and the checkpoint
    loaded a shorter list, or never loaded. Refused, the previous checkpoint kept."""
    io.save_checkpoint({"a": [torch.zeros(1)]}, tmp_path / "ck")
    with pytest.raises(CheckpointError, match=r"'a\.[01]'.*holds only empty dicts.*tuple"):
        io.save_checkpoint({"a": value}, tmp_path / "ck")
    assert _same(io.load_checkpoint(tmp_path / "ck"), {"a": [torch.zeros(1)]})


def test_load_into_a_template_in_place(io: DistributedCheckpointIO, tmp_path: Path) -> None:
    state = _state()
    io.save_checkpoint(state, tmp_path / "ck")
    template = {"model": {k: torch.zeros_like(v) for k, v in state["model"].items()}, "epoch": 0}
    weight = template["model"]["weight"]
    out = io.load_checkpoint(tmp_path / "ck", state=template)
    assert out is template and out["epoch"] == 3
    assert out["model"]["weight"] is weight and torch.equal(weight, state["model"]["weight"])
    with raises(CheckpointError, "unreadable", match="has 'extra', which the checkpoint lacks"):
        io.load_checkpoint(tmp_path / "ck", state={"extra": torch.zeros(1)})


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled")
def test_a_plain_dcp_directory_loads(io: DistributedCheckpointIO, tmp_path: Path) -> None:
    # What Lightning's FSDP strategy and torch.distributed.checkpoint itself write.
    state = {"w": torch.randn(3, 3), "step": 5}
    dcp.save(state, checkpoint_id=str(tmp_path / "plain"), no_dist=True)
    assert _same(io.load_checkpoint(tmp_path / "plain"), state)


def test_an_fsspec_url_round_trips(io: DistributedCheckpointIO) -> None:
    import fsspec

    state = {"w": torch.randn(8, 8), "step": 2}
    url = "memory://runs/dcp-test/step-2"
    io.save_checkpoint(state, url)
    fs = fsspec.filesystem("memory")
    assert fs.exists(f"/runs/dcp-test/step-2/{MARKER}")
    assert _same(io.load_checkpoint(url), state)
    io.remove_checkpoint(url)
    assert not fs.exists("/runs/dcp-test/step-2")
    with raises(CheckpointError, "not-found"):
        io.load_checkpoint(url)


# -- the commit ------------------------------------------------------------------------------


def test_a_new_save_replaces_the_old_and_leaves_one_data_directory(
    io: DistributedCheckpointIO, tmp_path: Path
) -> None:
    path = tmp_path / "ck"
    io.save_checkpoint({"v": torch.zeros(4)}, path)
    io.save_checkpoint({"v": torch.ones(4)}, path)
    assert torch.equal(io.load_checkpoint(path)["v"], torch.ones(4))
    io.teardown()  # the old data is deleted by a thread, joined here
    assert len(_data_dirs(path)) == 1


def test_a_save_drops_the_cached_pages_of_the_data_it_replaces(
    io: DistributedCheckpointIO, tmp_path: Path
) -> None:
    from tests._support.pagecache import require_droppable_page_cache, resident_fraction

    require_droppable_page_cache(tmp_path)
    path = tmp_path / "ck"
    first = {"w": torch.randn(10 << 20)}  # 40 MB
    io.save_checkpoint(first, path)
    # The first save's data files, watched past their removal by the next save.
    kept = []
    for i, file in enumerate(sorted((path / _data_dirs(path)[0]).glob("*.distcp"))):
        os.link(file, tmp_path / f"kept-{i}")
        kept.append(tmp_path / f"kept-{i}")
    assert kept and max(map(resident_fraction, kept)) > 0.9
    other = tmp_path / "other"
    io.save_checkpoint({"w": torch.zeros(10 << 20)}, other)  # another checkpoint: not these
    assert max(map(resident_fraction, kept)) > 0.9
    second = {"w": torch.randn(10 << 20)}
    io.save_checkpoint(second, path)
    # The second save's writes got their memory; the data is on disk, and the first
    # checkpoint was whole until the second one's commit.
    assert max(map(resident_fraction, kept)) < 0.1
    assert _same(io.load_checkpoint(path), second)
    assert _same(io.load_checkpoint(other), {"w": torch.zeros(10 << 20)})
    io.teardown()
    assert len(_data_dirs(path)) == 1


def test_a_save_does_not_wait_for_the_last_ones_tidying(
    io: DistributedCheckpointIO, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The removal of the data a save replaced runs beside the next save (it used to be
    joined at that save's start, on its time): it never removes the data of a save under
    way, and once it ends only the committed data is left."""
    import threading

    from builtin_plugins.checkpoint_io import distributed_io

    release = threading.Event()
    real = distributed_io.data_directories

    def slow_listing(fs: Any, root: str) -> list[str]:
        if threading.current_thread().name == "DistributedCheckpointIO-tidy":
            release.wait(60)
        return real(fs, root)

    monkeypatch.setattr(distributed_io, "data_directories", slow_listing)
    path = tmp_path / "ck"
    io.save_checkpoint({"w": torch.full((4,), 1.0)}, path)
    io.save_checkpoint({"w": torch.full((4,), 2.0)}, path)  # its tidy waits on `release`
    saved = threading.Thread(target=io.save_checkpoint, args=({"w": torch.full((4,), 3.0)}, path))
    saved.start()
    saved.join(30)
    assert not saved.is_alive(), "the save waited for the last save's tidying"
    in_progress = "data-" + "f" * 16
    (path / in_progress).mkdir()  # a save under way on this process
    io._writing.add(in_progress)
    release.set()
    io.teardown()
    left = sorted(p.name for p in path.iterdir())
    assert left == sorted([MARKER, json.loads((path / MARKER).read_text())["data"], in_progress])
    assert torch.equal(io.load_checkpoint(path)["w"], torch.full((4,), 3.0))


def test_tidying_leaves_the_data_of_an_async_save_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An async save's data is being written in the background when the last save's
    tidying runs: the tidying must not take it for replaced data."""
    import threading

    from torch.distributed.checkpoint.filesystem import FileSystemWriter

    from builtin_plugins.checkpoint_io import distributed_io

    tidy_gate, upload_gate = threading.Event(), threading.Event()
    real_listing, real_write = distributed_io.data_directories, FileSystemWriter.write_data

    def slow_listing(fs: Any, root: str) -> list[str]:
        if threading.current_thread().name == "DistributedCheckpointIO-tidy":
            tidy_gate.wait(60)
        return real_listing(fs, root)

    def gated_write(self: Any, *args: Any, **kwargs: Any) -> Any:
        upload_gate.wait(60)
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(distributed_io, "data_directories", slow_listing)
    monkeypatch.setattr(FileSystemWriter, "write_data", gated_write)
    aio = AsyncDistributedCheckpointIO()
    path = tmp_path / "ck"
    upload_gate.set()
    for value in (1.0, 2.0):
        aio.save_checkpoint({"w": torch.full((4,), value)}, path)
        aio.wait()  # committed; its tidying waits at tidy_gate
    upload_gate.clear()
    aio.save_checkpoint({"w": torch.full((4,), 3.0)}, path)  # staged; its upload waits
    tidy_gate.set()
    for thread in list(aio._tidying):
        thread.join(30)
    upload_gate.set()
    aio.wait()
    aio.teardown()
    assert torch.equal(aio.load_checkpoint(path)["w"], torch.full((4,), 3.0))
    assert len(_data_dirs(path)) == 1


def test_a_failed_write_leaves_the_previous_checkpoint(
    io: DistributedCheckpointIO, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ck"
    io.save_checkpoint({"v": torch.zeros(4)}, path)
    before = _data_dirs(path)

    def full(self: Any, plan: Any, planner: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dcp.FileSystemWriter, "write_data", full)
    with pytest.raises(CheckpointError, match=r"the disk is full.*previous checkpoint.*intact"):
        io.save_checkpoint({"v": torch.ones(4)}, path)
    assert _data_dirs(path) == before  # the partial data is gone, the old data kept
    assert torch.equal(io.load_checkpoint(path)["v"], torch.zeros(4))


def test_a_failed_first_save_leaves_no_directory(
    io: DistributedCheckpointIO, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(self: Any, plan: Any, planner: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dcp.FileSystemWriter, "write_data", full)
    with pytest.raises(CheckpointError):
        io.save_checkpoint({"v": torch.ones(4)}, tmp_path / "new")
    assert not (tmp_path / "new").exists()


_KILLED_BEFORE_COMMIT = """
import os, signal, sys, torch
from builtin_plugins.checkpoint_io import distributed_io
io = distributed_io.DistributedCheckpointIO()
io.save_checkpoint({"v": torch.zeros(4)}, sys.argv[1])
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)  # every shard written, the marker not
distributed_io.write_marker = die
io.save_checkpoint({"v": torch.ones(4)}, sys.argv[1])
if len(sys.argv) > 2:
    io.save_checkpoint({"v": torch.ones(4)}, sys.argv[2])
"""


def test_a_save_killed_before_its_commit_is_reported_and_never_loaded(
    io: DistributedCheckpointIO, tmp_path: Path
) -> None:
    path = tmp_path / "ck"
    run = subprocess.run(
        [sys.executable, "-c", _KILLED_BEFORE_COMMIT, str(path)], cwd=REPO, check=False
    )
    assert run.returncode == -9
    assert len(_data_dirs(path)) == 2  # the committed one and the killed save's
    with pytest.warns(PluginRegistryWarning, match="left from a save that did not finish"):
        loaded = io.load_checkpoint(path)
    assert torch.equal(loaded["v"], torch.zeros(4))  # the previous checkpoint
    io.save_checkpoint({"v": torch.full((4,), 2.0)}, path)
    io.teardown()
    assert len(_data_dirs(path)) == 1  # the next save cleared the leftover


def test_a_first_save_killed_before_its_commit_is_no_checkpoint(
    io: DistributedCheckpointIO, tmp_path: Path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    # The script commits `first`, then dies saving to `first` again: point the kill at `second`.
    script = _KILLED_BEFORE_COMMIT.replace(
        'io.save_checkpoint({"v": torch.ones(4)}, sys.argv[1])\nif', "if"
    )
    subprocess.run([sys.executable, "-c", script, str(first), str(second)], cwd=REPO, check=False)
    with raises(CheckpointError, "incomplete", match=r"a save began .* never committed") as err:
        io.load_checkpoint(second)
    assert isinstance(err.value, FileNotFoundError)  # "no checkpoint yet": start fresh


def test_remove_while_a_load_reads(io: DistributedCheckpointIO, tmp_path: Path) -> None:
    path = tmp_path / "ck"
    state = {"w": torch.randn(64, 64), "step": 1}
    io.save_checkpoint(state, path)
    reader = io._open(path, True)  # the load has begun: metadata read, files open
    try:
        io.remove_checkpoint(path)
        assert not path.exists()
        assert _same(io._read(reader, None, "cpu"), state)
    finally:
        reader.close()
    with raises(CheckpointError, "not-found"):
        io.load_checkpoint(path)
    io.remove_checkpoint(path)  # already gone: not an error


def test_removing_a_link_to_a_checkpoint_removes_the_link_only(
    io: DistributedCheckpointIO, tmp_path: Path
) -> None:
    """It deleted the target's checkpoint.json, then the link: the real one no longer loaded."""
    real, link = tmp_path / "real", tmp_path / "latest"
    state = {"w": torch.randn(4, 4)}
    io.save_checkpoint(state, real)
    link.symlink_to(real, target_is_directory=True)
    io.remove_checkpoint(link)
    assert not os.path.lexists(link)
    assert _same(io.load_checkpoint(real), state)


def test_remove_deletes_only_a_checkpoint_and_what_belongs_to_it(
    io: DistributedCheckpointIO, tmp_path: Path
) -> None:
    """Any directory tree at the path was deleted, checkpoint or not."""
    not_a_checkpoint = tmp_path / "results"
    (not_a_checkpoint / "sub").mkdir(parents=True)
    (not_a_checkpoint / "sub" / "notes.txt").write_text("keep me")
    with pytest.warns(PluginRegistryWarning, match="holds no distributed checkpoint.*nothing was"):
        io.remove_checkpoint(not_a_checkpoint)
    assert (not_a_checkpoint / "sub" / "notes.txt").read_text() == "keep me"
    a_file = tmp_path / "model.pt"
    a_file.write_bytes(b"not ours")
    with pytest.raises(CheckpointError, match=r"not a distributed checkpoint.*nothing was removed"):
        io.remove_checkpoint(a_file)
    assert a_file.read_bytes() == b"not ours"
    # A checkpoint beside a file of the user's: the checkpoint goes, the file stays.
    path = tmp_path / "ck"
    io.save_checkpoint({"w": torch.zeros(2)}, path)
    (path / "README").write_text("mine")
    io.remove_checkpoint(path)
    assert sorted(p.name for p in path.iterdir()) == ["README"]
    with pytest.warns(PluginRegistryWarning, match="nothing was removed"):
        io.remove_checkpoint(path)  # nothing of ours left: said, not an error
    empty = tmp_path / "empty"
    empty.mkdir()
    io.remove_checkpoint(empty)  # another rank removed it first
    assert not empty.exists()


def test_a_deeply_nested_marker_is_a_damaged_marker_not_a_storage_failure(
    io: DistributedCheckpointIO, tmp_path: Path
) -> None:
    path = tmp_path / "ck"
    io.save_checkpoint({"w": torch.zeros(2)}, path)
    (path / "checkpoint.json").write_text("[" * 100_000 + "]" * 100_000)
    with raises(CheckpointError, "unreadable", match=r"commit marker .* is damaged") as info:
        io.load_checkpoint(path)
    assert "storage failed" not in str(info.value)


def test_a_marker_larger_than_its_metadata_can_need_is_refused_unread(
    io: DistributedCheckpointIO, tmp_path: Path
) -> None:
    """A marker names key paths of the metadata's entries; a 60 MB one (under the old
    64 MB cap) took 30 s and 1.4 GB to load. Now its size is bounded by the metadata's
    (1 MiB + 4x), checked before a byte of it is parsed."""
    path = tmp_path / "ck"
    io.save_checkpoint({"w": torch.zeros(2), "s": {0: torch.ones(1)}}, path)
    marker = json.loads((path / MARKER).read_text())
    marker["keys"] = [["s", i] for i in range(300_000)]  # ~3.6 MB
    (path / MARKER).write_text(json.dumps(marker))
    with raises(CheckpointError, "unreadable", match=r"larger than a marker of its metadata"):
        io.load_checkpoint(path)
    marker["keys"] = [["s", 0]] + [["s", "x", i] for i in range(3)]
    (path / MARKER).write_text(json.dumps(marker))
    assert _same(io.load_checkpoint(path), {"w": torch.zeros(2), "s": {0: torch.ones(1)}})
    marker["empty"] = [[]]
    (path / MARKER).write_text(json.dumps(marker))
    with raises(CheckpointError, "unreadable", match=r"'empty' field is not a list of key"):
        io.load_checkpoint(path)


# -- safe loads ------------------------------------------------------------------------------


class _Payload:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.target, "w"))


def test_pickled_metadata_that_runs_code_is_refused(
    io: DistributedCheckpointIO, tmp_path: Path
) -> None:
    path = tmp_path / "ck"
    io.save_checkpoint({"w": torch.zeros(2)}, path)
    (data,) = _data_dirs(path)
    planted = tmp_path / "planted"
    (path / data / ".metadata").write_bytes(pickle.dumps(_Payload(str(planted))))
    with raises(CheckpointError, "refused", match=r"names io\.open.*weights_only=False"):
        io.load_checkpoint(path)
    assert not planted.exists()


def _global_call(module: str, name: str, arg: str, *, stack: bool) -> bytes:
    """A hand-written pickle: look ``module``/``name`` up, call it with ``arg``.

    ``stack`` uses protocol 4's STACK_GLOBAL (which resolves a dotted name attribute by
    attribute); otherwise the older GLOBAL opcode. ``pickle.dumps`` writes neither of
    these for such names, so an attacker's file is written by hand.
    """

    def text(s: str) -> bytes:
        raw = s.encode()
        return b"\x8c" + bytes([len(raw)]) + raw  # SHORT_BINUNICODE

    if stack:
        lookup = text(module) + text(name) + b"\x93"  # STACK_GLOBAL
    else:
        lookup = b"c" + module.encode() + b"\n" + name.encode() + b"\n"  # GLOBAL
    return b"\x80\x04" + lookup + text(arg) + b"\x85" + b"R" + b"."  # TUPLE1 REDUCE STOP


@pytest.mark.parametrize("stack", [True, False], ids=["stack-global", "global"])
@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("torch.distributed.checkpoint.metadata", "os.system"),  # via the module's `os`
        ("torch.distributed.checkpoint.metadata", "torch.load"),
        ("torch.distributed.checkpoint.metadata", "Metadata.__init__.__globals__.get"),
        ("torch", "os.system"),
        ("collections", "OrderedDict.fromkeys"),
        ("torch.distributed.checkpoint.metadata", "os"),  # a module, not a class
    ],
)
def test_metadata_opcode_streams_that_reach_code_by_a_dotted_name_are_refused(
    io: DistributedCheckpointIO, tmp_path: Path, module: str, name: str, stack: bool
) -> None:
    path = tmp_path / "ck"
    io.save_checkpoint({"w": torch.zeros(2)}, path)
    (data,) = _data_dirs(path)
    planted = tmp_path / "planted"
    payload = _global_call(module, name, f"touch {planted}", stack=stack)
    (path / data / ".metadata").write_bytes(payload)
    with raises(CheckpointError, "refused", match="weights_only=False"):
        io.load_checkpoint(path)
    assert not planted.exists()


@pytest.mark.parametrize("planted", ["checkpoint.json", ".metadata", "shard"])
def test_a_fifo_in_a_sharded_checkpoint_is_refused_not_waited_on(
    io: DistributedCheckpointIO, tmp_path: Path, planted: str
) -> None:
    """A FIFO as the marker, DCP's metadata or a shard hung the load forever."""
    from tests._support.support import raises_within

    path = tmp_path / "ck"
    io.save_checkpoint({"w": torch.zeros(2)}, path)
    (data,) = _data_dirs(path)
    if planted == "checkpoint.json":
        fifo = path / "checkpoint.json"
    elif planted == ".metadata":
        fifo = path / data / ".metadata"
    else:
        fifo = next((path / data).glob("*.distcp"))
    fifo.unlink()
    os.mkfifo(fifo)
    raised = raises_within(10, lambda: io.load_checkpoint(path), (fifo,))
    assert isinstance(raised, CheckpointError) and raised.reason == "unreadable", raised
    assert "not a regular file" in str(raised)


def test_a_value_of_another_class_needs_weights_only_false(
    io: DistributedCheckpointIO, tmp_path: Path
) -> None:
    path = tmp_path / "ck"
    io.save_checkpoint({"w": torch.zeros(2), "ratio": Fraction(1, 3)}, path)
    with raises(CheckpointError, "refused", match="weights_only=False"):
        io.load_checkpoint(path)
    assert io.load_checkpoint(path, weights_only=False)["ratio"] == Fraction(1, 3)
    trusting = DistributedCheckpointIO(weights_only=False)
    assert trusting.load_checkpoint(path)["ratio"] == Fraction(1, 3)


# -- errors ----------------------------------------------------------------------------------


def test_load_errors_name_the_problem(io: DistributedCheckpointIO, tmp_path: Path) -> None:
    with raises(CheckpointError, "not-found", match="does not exist"):
        io.load_checkpoint(tmp_path / "missing")
    single = tmp_path / "single.pt"
    torch.save({"w": torch.zeros(1)}, single)
    with raises(CheckpointError, "unreadable", match=r"it is a file.*'torch' plugin"):
        io.load_checkpoint(single)
    (tmp_path / "empty").mkdir()
    with raises(CheckpointError, "unreadable", match="holds no distributed checkpoint"):
        io.load_checkpoint(tmp_path / "empty")
    path = tmp_path / "ck"
    io.save_checkpoint({"w": torch.zeros(1)}, path)
    (path / MARKER).write_text("{not json")
    with raises(CheckpointError, "unreadable", match=r"commit marker checkpoint\.json is damaged"):
        io.load_checkpoint(path)
    marker = {"format": "plugin-registry/distributed-checkpoint", "data": "data-gone"}
    (path / MARKER).write_text(json.dumps(marker))
    with raises(CheckpointError, "unreadable", match="names data-gone/, which is missing"):
        io.load_checkpoint(path)
    marker["data"] = "../../etc"
    (path / MARKER).write_text(json.dumps(marker))
    with raises(CheckpointError, "unreadable", match="as its data directory"):
        io.load_checkpoint(path)


def test_save_errors_name_the_key_or_path(io: DistributedCheckpointIO, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"'a\.b'.*rename one"):
        io.save_checkpoint({"a.b": torch.zeros(1), "a": {"b": torch.ones(1)}}, tmp_path / "c1")
    with pytest.raises(CheckpointError, match=r"key \(1, 2\) at 'm\.\(1, 2\)'.*not tuple"):
        io.save_checkpoint({"m": {(1, 2): torch.zeros(1)}}, tmp_path / "c2")
    afile = tmp_path / "afile"
    afile.write_bytes(b"keep")
    with pytest.raises(CheckpointError, match=r"a parent of the path is a file|Not a directory"):
        io.save_checkpoint({"w": torch.zeros(1)}, afile)
    assert afile.read_bytes() == b"keep"
    with pytest.raises(ValueError, match="thread_count must be a positive integer"):
        DistributedCheckpointIO(thread_count=0)


# -- the resolver ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "chosen"),
    [("fsdp", "distributed"),
     pytest.param("deepspeed_stage_3", "distributed", marks=pytest.mark.needs("deepspeed")),
     ("ddp", "torch"),
     pytest.param("deepspeed", "torch", marks=pytest.mark.needs("deepspeed"))],
)  # fmt: skip
def test_the_resolver_picks_distributed_when_parameters_are_sharded(
    strategy: str, chosen: str
) -> None:
    precision = "32-true" if strategy != "fsdp" else "bf16-mixed"
    if strategy.startswith("deepspeed"):
        precision = "bf16-mixed"
    res = pr.resolve(precision=precision, strategy=strategy, accelerator="cpu")
    assert res.checkpoint_io.name == chosen
    (judged,) = [c for c in res.candidates["checkpoint_io"] if c.name == "distributed"]
    reasons = " ".join(judged.reasons)
    if chosen == "distributed":
        assert f"strategy {strategy!r} shards parameters: every rank writes its own" in reasons
        assert "every rank writes its own" in res.explain(width=400)
    else:
        assert not judged.accepted
        assert f"{strategy!r} does not (name it to use it)" in reasons


def test_distributed_may_be_named_for_a_plain_strategy() -> None:
    res = pr.resolve(plugins=["distributed"], strategy="ddp", accelerator="cpu")
    assert res.checkpoint_io.name == "distributed"


# -- async, one process ----------------------------------------------------------------------


@pytest.fixture
def aio() -> Iterator[AsyncDistributedCheckpointIO]:
    plugin = pr.load("async-distributed")
    assert isinstance(plugin, AsyncDistributedCheckpointIO)
    yield plugin
    with contextlib.suppress(CheckpointError):
        plugin.teardown()


def test_async_saves_what_the_caller_had_when_it_asked(
    aio: AsyncDistributedCheckpointIO, tmp_path: Path
) -> None:
    w = torch.randn(256, 256)
    expected = w.clone()
    aio.save_checkpoint({"w": w, "step": 1}, tmp_path / "a")
    w.add_(1.0)  # at once: the save must not see it
    aio.save_checkpoint({"w": w, "step": 2}, tmp_path / "b")
    aio.wait()
    assert torch.equal(aio.load_checkpoint(tmp_path / "a")["w"], expected)
    assert torch.equal(aio.load_checkpoint(tmp_path / "b")["w"], expected + 1)


def test_async_failure_is_raised_by_the_next_call(
    aio: AsyncDistributedCheckpointIO, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = dcp.FileSystemWriter.write_data
    calls: list[str] = []

    def full_once(self: Any, plan: Any, planner: Any) -> Any:
        calls.append(str(self.path))
        if len(calls) == 1:  # the first save's write runs in the background thread
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, plan, planner)

    monkeypatch.setattr(dcp.FileSystemWriter, "write_data", full_once)
    aio.save_checkpoint({"w": torch.zeros(2)}, tmp_path / "a")
    with pytest.raises(CheckpointError, match=r"background save to '.*a' failed.*disk is full"):
        aio.save_checkpoint({"w": torch.zeros(2)}, tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    aio.save_checkpoint({"w": torch.ones(2)}, tmp_path / "c")  # reported once, then it goes on
    assert torch.equal(aio.load_checkpoint(tmp_path / "c")["w"], torch.ones(2))


_EXIT_WITHOUT_WAIT = """
import sys, torch, errno
import plugin_registry as pr
import torch.distributed.checkpoint as dcp
aio = pr.load("async-distributed")
if sys.argv[2] == "fail":
    def full(self, plan, planner):
        raise OSError(errno.ENOSPC, "No space left on device")
    dcp.FileSystemWriter.write_data = full
aio.save_checkpoint({"w": torch.arange(1000.0), "step": 9}, sys.argv[1])
print("returned", flush=True)
"""


def test_async_commits_at_exit_and_reports_a_failure_nobody_saw(
    io: DistributedCheckpointIO, tmp_path: Path
) -> None:
    ok = subprocess.run(
        [sys.executable, "-c", _EXIT_WITHOUT_WAIT, str(tmp_path / "ok"), "ok"],
        cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert io.load_checkpoint(tmp_path / "ok")["step"] == 9
    bad = subprocess.run(
        [sys.executable, "-c", _EXIT_WITHOUT_WAIT, str(tmp_path / "bad"), "fail"],
        cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode == 1
    assert "AsyncDistributedCheckpointIO: the background save to" in bad.stderr
    assert "disk is full" in bad.stderr
    assert not (tmp_path / "bad").exists()


# -- under torchrun --------------------------------------------------------------------------


def _torchrun(nproc: int, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
         "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
         str(REPO / "tests" / "workers" / "dcp_worker.py"), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    lines = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    return proc.returncode, lines, proc.stderr


def _losses(lines: list[dict[str, Any]]) -> dict[int, float]:
    return {ln["step"]: ln["loss"] for ln in lines if "loss" in ln}


@pytest.mark.slow
def test_fsdp2_training_survives_a_killed_rank_and_resumes_on_other_world_sizes(
    io: DistributedCheckpointIO, tmp_path: Path
) -> None:
    root, root3 = tmp_path / "run", tmp_path / "run3"
    # 4 ranks, saves at steps 2 and 4; rank 0 (the coordinator) is SIGKILLed after its
    # shards of step 6 are written, before anything is committed.
    rc, killed, err = _torchrun(4, str(root), "--steps", "6", "--every", "2", "--kill-at", "6",
                                "--victim", "0")  # fmt: skip
    assert rc != 0, err
    saved = {ln["saved"]: ln["digest"] for ln in killed if "saved" in ln}
    assert sorted(saved) == [2, 4]
    with raises(CheckpointError, "incomplete"):
        io.load_checkpoint(root / "step-6")
    shutil.copytree(root, root3)
    # The same 8 steps uninterrupted, on 4 ranks: the reference trajectory.
    rc, reference, err = _torchrun(4, str(tmp_path / "ref"), "--steps", "8", "--every", "100")
    assert rc == 0, err
    ref = _losses(reference)
    for world, where in ((2, root), (3, root3)):
        rc, resumed, err = _torchrun(world, str(where), "--steps", "8", "--every", "4",
                                     "--resume")  # fmt: skip
        assert rc == 0, err
        skipped = [ln for ln in resumed if "skipped" in ln]
        assert skipped and skipped[0]["skipped"] == "step-6"
        start = next(ln for ln in resumed if "resumed" in ln)
        # Resharded from 4 ranks to `world`: every value identical (same full-state hash).
        assert start["resumed"] == 4 and start["digest"] == saved[4] and start["world"] == world
        got = _losses(resumed)
        assert sorted(got) == [5, 6, 7, 8]
        for step, loss in got.items():
            assert loss == pytest.approx(ref[step], rel=1e-5), (world, step)
        final = next(ln["digest"] for ln in resumed if "digest" in ln and "resumed" not in ln
                     and "saved" not in ln)  # fmt: skip
        # Saved on `world` ranks, loaded whole on one process: the same values.
        loaded = io.load_checkpoint(where / "step-8")
        assert loaded["step"] == 8
        assert digest({"model": loaded["model"], "optim": loaded["optim"]}) == final
    for step in range(1, 7):
        assert _losses(killed)[step] == pytest.approx(ref[step], rel=1e-5)


@pytest.mark.slow
def test_async_distributed_under_torchrun(io: DistributedCheckpointIO, tmp_path: Path) -> None:
    root = tmp_path / "run"
    # Rank 1's write of step 4 fails; both ranks hear of it at the step-6 save; the step-8
    # save is left to the exit guards (no wait, no teardown).
    rc, lines, err = _torchrun(2, str(root), "--io", "async-distributed", "--steps", "8",
                               "--every", "2", "--fail-at", "4", "--no-wait")  # fmt: skip
    assert rc == 0, err
    errors = [ln for ln in lines if "error" in ln]
    assert sorted(ln["rank"] for ln in errors) == [0, 1]
    assert {ln["step"] for ln in errors} == {6}
    assert len({ln["error"] for ln in errors}) == 1  # the same words on every rank
    assert "background save to" in errors[0]["error"] and "step-4" in errors[0]["error"]
    assert sorted(p.name for p in root.iterdir()) == ["step-2", "step-8"]
    final = next(ln["digest"] for ln in lines if "digest" in ln and "saved" not in ln)
    loaded = io.load_checkpoint(root / "step-8")
    assert digest({"model": loaded["model"], "optim": loaded["optim"]}) == final
    # What was saved at step 2 is what the run had then (staged before the call returned).
    two = io.load_checkpoint(root / "step-2")
    saved2 = next(ln["digest"] for ln in lines if ln.get("saved") == 2)
    assert digest({"model": two["model"], "optim": two["optim"]}) == saved2


# -- saves in a row (plan caching, data names) ----------------------------------------


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled")
def test_saves_of_other_structures_in_turn_each_load_their_own(tmp_path: Path) -> None:
    """DCP reuses a plan while a state keeps its structure: states that change in turn, on
    one IO and on two, never get another's plan (a wrong plan would drop or misplace
    entries)."""
    first, second = pr.load("distributed"), pr.load("distributed")
    small = {"w": torch.arange(4.0), "step": 1}
    large = {"w": torch.arange(6.0), "b": {"x": torch.ones(2)}, "step": 2}
    saves = [(first, small), (first, large), (second, small), (first, small), (first, large)]
    for i, (io, state) in enumerate(saves):
        io.save_checkpoint(state, tmp_path / f"ck-{i}")
    for i, (io, state) in enumerate(saves):
        assert _same(io.load_checkpoint(tmp_path / f"ck-{i}"), state), i
    from torch.distributed.checkpoint.planner import SavePlanner

    def cached(io: Any) -> list[str]:
        return [k for k in SavePlanner._cached_global_plan if f":{id(io)}:" in k]

    assert cached(first) and cached(second)
    first.teardown()
    assert not cached(first) and cached(second)
    key = cached(second)[0]
    del second, io, saves  # an IO nobody tears down forgets its plans when it is collected
    gc.collect()
    assert key not in SavePlanner._cached_global_plan


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled")
def test_each_save_writes_a_data_directory_of_its_own_and_a_failure_draws_a_new_prefix(
    io: DistributedCheckpointIO, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ck"
    names = []
    for step in range(3):
        io.save_checkpoint({"w": torch.full((3,), float(step))}, path)
        names.append(json.loads((path / MARKER).read_text())["data"])
    assert len(set(names)) == 3 and len({n[:-6] for n in names}) == 1  # one prefix, counted
    from builtin_plugins.checkpoint_io import distributed_io

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(distributed_io, "write_marker", broken)
        with raises(CheckpointError, "failed", match="No space left"):
            io.save_checkpoint({"w": torch.zeros(3)}, path)
    io.save_checkpoint({"w": torch.ones(3)}, path)
    after = json.loads((path / MARKER).read_text())["data"]
    assert after[:-6] != names[0][:-6], "the ranks agree on a new prefix after a failure"
    assert torch.equal(io.load_checkpoint(path)["w"], torch.ones(3))


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled")
def test_async_takes_a_statefuls_state_when_asked(tmp_path: Path) -> None:
    class Counter:
        def __init__(self) -> None:
            self.value = torch.zeros(3)

        def state_dict(self) -> dict[str, Any]:
            return {"value": self.value}

        def load_state_dict(self, state: dict[str, Any]) -> None:
            self.value = state["value"]

    aio = pr.load("async-distributed")
    counter = Counter()
    counter.value.fill_(1)
    aio.save_checkpoint({"counter": counter, "step": 1}, tmp_path / "ck")
    counter.value.fill_(2)  # after the call: not in the checkpoint
    aio.wait()
    loaded = aio.load_checkpoint(tmp_path / "ck")
    assert torch.equal(loaded["counter"]["value"], torch.ones(3)) and loaded["step"] == 1
    aio.teardown()
