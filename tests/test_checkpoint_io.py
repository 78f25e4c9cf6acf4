"""The built-in checkpoint IO plugins, loaded by name and used on real files."""

from __future__ import annotations

import gzip
import json
import os
import random
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch

import plugin_registry as pr
from builtin_plugins.checkpoint_io.async_io import AsyncCheckpointIO
from builtin_plugins.checkpoint_io.torch_io import TorchCheckpointIO
from plugin_registry.kinds.checkpoint_io import CheckpointError, CheckpointIO
from tests._support.support import REPO


def state(seed: int = 0) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    return {
        "model": {
            "w": torch.randn(64, 32, generator=g),
            "b": torch.zeros(32, dtype=torch.bfloat16),
        },
        "optimizer": {"step": torch.tensor(7), "lr": 0.1, "betas": (0.9, 0.99)},
        "epoch": 3,
        "name": "run-1",
        "ints": torch.arange(10, dtype=torch.int64),
    }


def assert_same(a: Any, b: Any) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    else:
        assert a == b


def temporaries(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture
def io() -> CheckpointIO:
    plugin: CheckpointIO = pr.load("torch", kind="checkpoint_io")
    return plugin


@pytest.fixture(params=["torch", "template"])
def local_io(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> CheckpointIO:
    """The built-in IO, and the template's (examples/acme-plugins, what `plugin-registry new`
    writes): an author's IO built on the public helpers meets the same faults."""
    if request.param == "torch":
        plugin: CheckpointIO = pr.load("torch", kind="checkpoint_io")
        return plugin
    monkeypatch.syspath_prepend(str(REPO / "examples" / "acme-plugins"))
    from acme_plugins.compressed_io import CompressedCheckpointIO

    return CompressedCheckpointIO("gzip", level=1)


def test_names_resolve_to_the_builtins() -> None:
    assert isinstance(pr.load("checkpoint_io/torch"), TorchCheckpointIO)
    for name in ("async", "async-torch", "checkpoint_io/plugin-registry:async"):
        plugin = pr.load(name)
        assert isinstance(plugin, AsyncCheckpointIO)
        assert isinstance(plugin.checkpoint_io, TorchCheckpointIO)
        plugin.teardown()
    xla = pr.get("checkpoint_io/xla")
    if not xla.available:
        assert "torch_xla is not installed" in xla.unavailable_reason
        with pytest.raises(pr.PluginUnavailableError, match=r"plugin-registry\[xla\]"):
            pr.load("checkpoint_io/xla")


def test_round_trip_local_and_nested_directory(local_io: CheckpointIO, tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "last.ckpt"
    original = state()
    local_io.save_checkpoint(original, path)
    assert_same(original, local_io.load_checkpoint(path))
    assert temporaries(path.parent) == []
    local_io.remove_checkpoint(path)
    assert not path.exists()
    local_io.remove_checkpoint(path)  # already gone: not an error


def test_round_trip_memory_filesystem(io: CheckpointIO) -> None:
    original = state(1)
    io.save_checkpoint(original, "memory://ckpts/run/epoch=1.ckpt")
    assert_same(original, io.load_checkpoint("memory://ckpts/run/epoch=1.ckpt"))
    io.remove_checkpoint("memory://ckpts/run/epoch=1.ckpt")
    with pytest.raises(CheckpointError, match="does not exist"):
        io.load_checkpoint("memory://ckpts/run/epoch=1.ckpt")


def test_map_location_and_mmap(io: CheckpointIO, tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    original = state(2)
    io.save_checkpoint(original, path)
    assert_same(original, io.load_checkpoint(path, map_location="cpu", mmap=True))
    mapped = TorchCheckpointIO(mmap=True).load_checkpoint(path)
    assert_same(original, mapped)
    # The legacy (non-zip) format cannot be mapped: loaded normally instead.
    legacy = tmp_path / "legacy.pt"
    torch.save(original, legacy, _use_new_zipfile_serialization=False)
    assert_same(original, TorchCheckpointIO(mmap=True).load_checkpoint(legacy))


def test_failed_save_leaves_the_previous_checkpoint(local_io: CheckpointIO, tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    local_io.save_checkpoint(state(3), path)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match="cannot serialise") as info:
        local_io.save_checkpoint({"w": torch.ones(1000), "bad": lambda: None}, path)
    assert str(path) in str(info.value) and "previous checkpoint there, if any, is intact" in str(
        info.value
    )
    assert path.read_bytes() == before
    assert temporaries(tmp_path) == []


def test_temporaries_of_dead_writers_are_removed_by_the_next_save(
    local_io: CheckpointIO, tmp_path: Path
) -> None:
    from plugin_registry import _files

    path = tmp_path / "c.pt"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".c.pt.{_files._host()}.{dead_pid}.abc123.tmp"
    live = tmp_path / f".c.pt.{_files._host()}.{os.getppid()}.def456.tmp"  # a live writer
    other = tmp_path / f".other.pt.{_files._host()}.{dead_pid}.abc123.tmp"  # another target
    for f in (stale, live, other):
        f.write_bytes(b"partial")
    local_io.save_checkpoint(state(), path)
    assert not stale.exists()
    assert live.exists() and other.exists()


def test_a_replaced_large_file_is_released_after_the_save_returns(tmp_path: Path) -> None:
    from plugin_registry import _atomic_write, _files

    path = tmp_path / "big.pt"
    path.write_bytes(b"old" * (12 * 2**20))  # 36 MB: released by the helper thread
    with open(path, "rb") as reader:  # a reader of the old file keeps it whole
        pr.load("torch").save_checkpoint({"w": torch.zeros(4)}, path)
        assert reader.read(6) == b"oldold"
    for thread in threading.enumerate():
        if thread.name == "atomic_write-release":
            thread.join()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.pt"]  # no link left behind
    # A crash between the link and its removal leaves a name the next save removes.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    tmp = tmp_path / f".big.pt.{_files._host()}.{int(dead.stdout)}.x1y2z3.tmp"
    tmp.write_bytes(b"")
    path.write_bytes(b"old" * (12 * 2**20))
    left = _atomic_write._keep_old(str(path), str(tmp))
    assert left is not None and os.path.samefile(left, path)
    tmp.unlink()
    pr.load("torch").save_checkpoint({"w": torch.zeros(4)}, path)
    assert not os.path.exists(left)


def test_a_failed_rename_leaves_neither_temporary_nor_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.pt"
    path.write_bytes(b"old" * (12 * 2**20))  # large enough to be linked before the rename

    def refuse(src: str, dst: str) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(CheckpointError, match="previous checkpoint there, if any, is intact"):
        pr.load("torch").save_checkpoint({"w": torch.zeros(4)}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.pt"]
    assert path.read_bytes()[:6] == b"oldold"


def test_the_zip_crc32_is_skipped_unless_asked_for(tmp_path: Path) -> None:
    import zipfile

    state = {"w": torch.arange(1000.0)}
    fast, checked = tmp_path / "fast.pt", tmp_path / "checked.pt"
    TorchCheckpointIO().save_checkpoint(state, fast)
    TorchCheckpointIO(crc32=True).save_checkpoint(state, checked)
    assert torch.serialization.get_crc32_options()  # torch's switch is restored
    with zipfile.ZipFile(checked) as z:
        assert z.testzip() is None  # zip tools can verify it
    with zipfile.ZipFile(fast) as z:
        assert {i.CRC for i in z.infolist()} == {0}
    assert torch.equal(TorchCheckpointIO().load_checkpoint(fast)["w"], state["w"])


def test_sigkill_at_random_moments_leaves_old_or_new(tmp_path: Path) -> None:
    rounds = int(os.environ.get("CHECKPOINT_KILL_ROUNDS", "20"))
    script = REPO / "tests" / "workers" / "kill_during_save.py"
    run = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(rounds), "1234"],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    counts = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"SIGKILL during save: {counts}")
    assert counts["intact"] == rounds and counts["corrupt"] == 0
    assert counts["leftover_temporaries"] >= 1, "no kill landed inside a save: test proves nothing"
    assert counts["temporaries_after_next_save"] == 0


def test_the_kill_harness_catches_torn_writes_of_plain_torch_save(tmp_path: Path) -> None:
    script = REPO / "tests" / "workers" / "kill_during_save.py"
    run = subprocess.run(
        [sys.executable, str(script), str(tmp_path), "20", "1234", "--plain"],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    counts = json.loads(run.stdout.strip().splitlines()[-1])
    assert counts["corrupt"] >= 1, counts


FULL_DISK = """
import json, os, resource, signal, sys, torch, plugin_registry as pr
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # get EFBIG instead of being killed
io = pr.load(sys.argv[3])
path = sys.argv[1]
io.save_checkpoint({"w": torch.ones(10)}, path)
if sys.argv[2] == "rlimit":
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
big = torch.rand(2_000_000, generator=torch.Generator().manual_seed(0))  # incompressible
try:
    io.save_checkpoint({"w": big}, path)
    print(json.dumps(["saved", "", False]))
except Exception as exc:
    intact = torch.equal(io.load_checkpoint(path)["w"], torch.ones(10))
    print(json.dumps([type(exc).__name__, str(exc), intact]))
"""


def check_full_disk(
    directory: Path, mode: str, python: str = sys.executable, io: str = "torch", **run: Any
) -> None:
    """Fill the disk (or the file size limit) during a save by ``io`` run by ``python``."""
    path = directory / "c.pt"
    proc = subprocess.run(
        [python, "-c", FULL_DISK, str(path), mode, io],
        capture_output=True,
        text=True,
        check=True,
        **run,
    )
    kind, message, intact = json.loads(proc.stdout.strip().splitlines()[-1])
    assert kind == "CheckpointError", message
    assert str(path) in message and "the disk is full or the file size limit" in message
    assert "previous checkpoint there, if any, is intact" in message
    assert intact, "the previous checkpoint does not load back"
    assert temporaries(directory) == []


def test_file_size_limit_during_save(tmp_path: Path) -> None:
    check_full_disk(tmp_path, "rlimit")


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Any:
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): {proc.stderr.strip()}"
        )
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_disk_fills_up_during_save(small_tmpfs: Path) -> None:
    check_full_disk(small_tmpfs, "tmpfs")


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (os.system, (f"touch {self.marker}",))


def test_pickle_payload_never_runs_by_default(io: CheckpointIO, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.ones(2), "payload": Payload(marker)}, path)
    with pytest.raises(CheckpointError) as info:
        io.load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "weights_only=False" in message and "trust" in message
    assert not marker.exists()
    # The payload is real: opting out runs it.
    io.load_checkpoint(path, weights_only=False)
    assert marker.exists()


def test_weights_only_refusal_keeps_torchs_advice(io: CheckpointIO, tmp_path: Path) -> None:
    import argparse

    path = tmp_path / "args.pt"
    torch.save({"w": torch.ones(2), "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(CheckpointError) as info:
        io.load_checkpoint(path)
    message = str(info.value)
    assert "Unsupported global: GLOBAL argparse.Namespace" in message
    assert "torch.serialization.add_safe_globals([argparse.Namespace])" in message
    assert "weights_only=False" in message and "\n" not in message
    with torch.serialization.safe_globals([argparse.Namespace]):
        assert io.load_checkpoint(path)["args"].lr == 0.1  # the advice works


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        (b"", "the file is empty"),
        (b"\x01" + random.Random(0).randbytes(4095), "not a torch checkpoint"),
        (b"\x93NUMPY\x01\x00v\x00{'descr': '<f4'}", "NumPy .npy file"),
        (struct.pack("<Q", 2) + b'{"w":{}}', "safetensors file"),
        (json.dumps({"w": [1, 2]}).encode(), "JSON text"),
        (gzip.compress(b"hello"), "gzip-compressed"),
        (b"\x89HDF\r\n\x1a\n" + b"\0" * 64, "HDF5 file"),
    ],
    ids=["empty", "random", "npy", "safetensors", "json", "gzip", "hdf5"],
)
def test_files_that_are_not_checkpoints(
    io: CheckpointIO, tmp_path: Path, content: bytes, cause: str
) -> None:
    path = tmp_path / "thing.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        io.load_checkpoint(path)
    assert str(path) in str(info.value) and cause in str(info.value)
    assert info.value.path == str(path)


def test_truncated_missing_and_directory(io: CheckpointIO, tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    io.save_checkpoint(state(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated") as info:
        io.load_checkpoint(path)
    assert str(path) in str(info.value)
    with pytest.raises(CheckpointError, match="does not exist"):
        io.load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="is a directory"):
        io.load_checkpoint(tmp_path)


# -- AsyncCheckpointIO -------------------------------------------------------


class GatedCheckpointIO(TorchCheckpointIO):
    """The real torch writer, held at a gate so a test controls when saves finish."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.started = threading.Semaphore(0)
        self.saved: list[str] = []

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        self.started.release()
        assert self.gate.wait(30)
        super().save_checkpoint(checkpoint, path, storage_options)
        self.saved.append(os.path.basename(path))


class FailingCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        if os.path.basename(path).startswith("fail"):
            raise OSError(28, "No space left on device")
        super().save_checkpoint(checkpoint, path, storage_options)


def test_async_snapshot_lets_the_loop_mutate(tmp_path: Path) -> None:
    inner = GatedCheckpointIO()
    aio = AsyncCheckpointIO(inner)
    weights = torch.zeros(1000)
    sd = {"w": weights, "nested": {"list": [weights, 1]}, "step": 1}
    aio.save_checkpoint(sd, tmp_path / "a.pt")
    weights.add_(5)  # the training loop goes on
    sd["step"] = 2
    inner.gate.set()
    loaded = aio.load_checkpoint(tmp_path / "a.pt")  # waits for the pending save
    assert torch.equal(loaded["w"], torch.zeros(1000))
    assert torch.equal(loaded["nested"]["list"][0], torch.zeros(1000))
    assert loaded["step"] == 1
    aio.teardown()


def test_async_saves_complete_in_order_with_back_pressure(tmp_path: Path) -> None:
    inner = GatedCheckpointIO()
    aio = AsyncCheckpointIO(inner, max_pending=2)
    aio.save_checkpoint({"i": 0}, tmp_path / "0.pt")
    aio.save_checkpoint({"i": 1}, tmp_path / "1.pt")
    assert inner.started.acquire(timeout=10)
    third_returned = threading.Event()

    def third() -> None:
        aio.save_checkpoint({"i": 2}, tmp_path / "2.pt")
        third_returned.set()

    t = threading.Thread(target=third)
    t.start()
    assert not third_returned.wait(0.5), "a third save must wait while two are pending"
    inner.gate.set()
    assert third_returned.wait(10)
    t.join()
    aio.teardown()
    assert inner.saved == ["0.pt", "1.pt", "2.pt"]
    for i in range(3):
        assert torch.load(tmp_path / f"{i}.pt", weights_only=True) == {"i": i}


def test_async_failure_surfaces_at_next_call_and_teardown(tmp_path: Path) -> None:
    aio = AsyncCheckpointIO(FailingCheckpointIO())
    aio.save_checkpoint({"i": 1}, tmp_path / "fail-1.pt")
    time.sleep(0.5)
    with pytest.raises(CheckpointError, match=r"fail-1\.pt") as info:
        aio.save_checkpoint({"i": 2}, tmp_path / "ok.pt")
    assert isinstance(info.value.__cause__, OSError)
    assert not (tmp_path / "ok.pt").exists(), "the call that raised did not save"
    aio.save_checkpoint({"i": 2}, tmp_path / "ok.pt")  # the error was reported once
    aio.save_checkpoint({"i": 3}, tmp_path / "fail-3.pt")
    thread = aio._thread
    with pytest.raises(CheckpointError, match=r"fail-3\.pt"):
        aio.teardown()
    assert thread is not None and not thread.is_alive(), "teardown must release the thread"
    assert torch.load(tmp_path / "ok.pt", weights_only=True) == {"i": 2}


def test_async_may_wrap_an_async_io_as_lightnings_does(tmp_path: Path) -> None:
    inner = AsyncCheckpointIO(GatedCheckpointIO())
    aio = AsyncCheckpointIO(inner)
    weights = torch.zeros(100)
    for i in range(3):
        aio.save_checkpoint({"w": weights, "i": i}, tmp_path / f"{i}.pt")
        weights.add_(1)  # the loop goes on while both layers hold their snapshots
    gated = inner.checkpoint_io
    assert isinstance(gated, GatedCheckpointIO)
    gated.gate.set()
    aio.wait()  # waits for the inner IO's saves as well
    assert gated.saved == ["0.pt", "1.pt", "2.pt"]
    for i in range(3):
        loaded = aio.load_checkpoint(tmp_path / f"{i}.pt")
        assert loaded["i"] == i and torch.equal(loaded["w"], torch.full((100,), float(i)))
    aio.teardown()


def test_async_over_async_reports_the_inner_failure(tmp_path: Path) -> None:
    aio = AsyncCheckpointIO(AsyncCheckpointIO(FailingCheckpointIO()))
    aio.save_checkpoint({"i": 1}, tmp_path / "fail-1.pt")
    with pytest.raises(CheckpointError, match=r"fail-1\.pt"):
        aio.wait()
    aio.save_checkpoint({"i": 2}, tmp_path / "ok.pt")
    aio.teardown()
    assert torch.load(tmp_path / "ok.pt", weights_only=True) == {"i": 2}


def _as_if_saved_on_a_gpu(path: Path) -> None:
    """Rewrite a torch checkpoint's storage location tags from 'cpu' to 'cuda:0'."""
    import io as _io
    import zipfile

    original = path.read_bytes()
    out = _io.BytesIO()
    with zipfile.ZipFile(_io.BytesIO(original)) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("data.pkl"):
                assert b"X\x03\x00\x00\x00cpu" in data
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            zout.writestr(info.filename, data)
    path.write_bytes(out.getvalue())


@pytest.mark.parametrize("name", ["torch", "async"])
def test_a_gpu_checkpoint_loads_onto_the_cpu_by_default_as_lightnings(
    name: str, tmp_path: Path
) -> None:
    """Lightning's default map_location keeps every tensor on the CPU: every rank of a
    resumed GPU job would otherwise load the whole checkpoint onto the saving device."""
    pytest.importorskip("lightning", reason="lightning is not installed (the [lightning] extra)")
    from lightning.fabric.plugins.io import TorchCheckpointIO as LightningTorchIO

    path = tmp_path / "gpu.pt"
    torch.save({"w": torch.arange(4.0)}, path)
    _as_if_saved_on_a_gpu(path)
    plugin: CheckpointIO = pr.load(name, kind="checkpoint_io")
    theirs = LightningTorchIO().load_checkpoint(path)
    ours = plugin.load_checkpoint(path)
    assert ours["w"].device == theirs["w"].device == torch.device("cpu")
    assert torch.equal(ours["w"], torch.arange(4.0))
    if not torch.cuda.is_available():
        with pytest.raises(CheckpointError):
            plugin.load_checkpoint(path, map_location=None)  # None: where it was saved
    plugin.teardown()


BACKGROUND_IMPORTS = """
import importlib.abc, json, sys, threading, torch, plugin_registry as pr
imported = []
class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if threading.current_thread() is not threading.main_thread():
            imported.append(name)
io = pr.load(sys.argv[2])
sys.meta_path.insert(0, Watch())
io.save_checkpoint({"w": torch.ones(10)}, sys.argv[1])
io.wait()
print(json.dumps(imported))
"""


@pytest.mark.parametrize("name", ["async"])
def test_a_background_save_imports_nothing(tmp_path: Path, name: str) -> None:
    # A first import in the saving thread races the caller's imports: CPython's
    # deadlock avoidance then hands one thread a half-initialised module ("partially
    # initialized module 'fsspec' has no attribute 'core"), seen under Accelerate.
    run = subprocess.run(
        [sys.executable, "-c", BACKGROUND_IMPORTS, str(tmp_path / "c.pt"), name],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert json.loads(run.stdout.strip().splitlines()[-1]) == [], run.stdout


def test_async_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_pending"):
        AsyncCheckpointIO(max_pending=0)
    with pytest.raises(pr.PluginNotFoundError, match="Did you mean 'torch'"):
        AsyncCheckpointIO("trch")


def test_async_reuses_buffers_only_after_their_save_finished(tmp_path: Path) -> None:
    inner = GatedCheckpointIO()
    aio = AsyncCheckpointIO(inner, max_pending=2)
    weights = torch.zeros(10_000)
    for i in (1, 2):  # both pending at once: each must have its own buffers
        weights.fill_(i)
        aio.save_checkpoint({"w": weights}, tmp_path / f"{i}.pt")
    weights.fill_(-1)
    inner.gate.set()
    aio.wait()
    assert len(aio._pool) == 2
    buffers = {id(staging[("w",)]) for staging in aio._pool}
    weights.fill_(3)
    aio.save_checkpoint({"w": weights}, tmp_path / "3.pt")  # reuses a finished save's buffer
    aio.wait()
    assert {id(staging[("w",)]) for staging in aio._pool} == buffers
    for i in (1, 2, 3):
        loaded = torch.load(tmp_path / f"{i}.pt", weights_only=True)["w"]
        assert torch.equal(loaded, torch.full((10_000,), float(i)))
    aio.teardown()
    assert aio._pool == []


def test_async_snapshot_keeps_tied_tensors_tied(tmp_path: Path) -> None:
    aio = AsyncCheckpointIO("torch")
    shared = torch.randn(100)
    aio.save_checkpoint(
        {"embed": shared, "head": shared, "other": torch.ones(3)}, tmp_path / "t.pt"
    )
    loaded = aio.load_checkpoint(tmp_path / "t.pt")
    assert loaded["embed"].data_ptr() == loaded["head"].data_ptr()
    assert torch.equal(loaded["embed"], shared)
    aio.teardown()


def _raised(call: Any) -> BaseException:
    try:
        call()
    except Exception as exc:  # the type is what is compared
        return exc
    raise AssertionError("no exception")


@pytest.mark.parametrize("case", ["missing", "garbage", "torn", "gpu", "pickle"])
def test_load_errors_are_also_the_type_lightning_raises(case: str, tmp_path: Path) -> None:
    """Our CheckpointError keeps its message, and ``except`` clauses written for
    Lightning's TorchCheckpointIO (FileNotFoundError, RuntimeError, UnpicklingError)
    still catch it."""
    import argparse

    pytest.importorskip("lightning", reason="lightning is not installed (the [lightning] extra)")
    from lightning.fabric.plugins.io import TorchCheckpointIO as LightningTorchIO

    path = tmp_path / "x.pt"
    if case == "garbage":
        path.write_bytes(b"not a checkpoint at all" * 10)
    elif case == "torn":
        torch.save(state(), path)
        path.write_bytes(path.read_bytes()[:300])
    elif case == "gpu":
        torch.save({"w": torch.ones(2)}, path)
        _as_if_saved_on_a_gpu(path)
    elif case == "pickle":
        torch.save({"args": argparse.Namespace(lr=0.1)}, path)
    kwargs: dict[str, Any] = {"map_location": None} if case == "gpu" else {}
    theirs = _raised(lambda: LightningTorchIO().load_checkpoint(path, **kwargs))
    ours = _raised(lambda: TorchCheckpointIO().load_checkpoint(path, **kwargs))
    assert isinstance(ours, CheckpointError)
    assert isinstance(ours, type(theirs)), (type(ours).__mro__, type(theirs))
    assert str(path) in str(ours)


def test_a_fifo_at_the_checkpoint_path_is_refused_not_waited_on(tmp_path: Path) -> None:
    """A FIFO where the checkpoint file should be hung the load forever (open() waits
    for a writer): only regular files are read."""
    from tests._support.support import raises_within

    fifo = tmp_path / "model.pt"
    os.mkfifo(fifo)
    for io in (TorchCheckpointIO(), TorchCheckpointIO(mmap=True)):
        raised = raises_within(10, lambda io=io: io.load_checkpoint(fifo), (fifo,))
        assert isinstance(raised, CheckpointError), raised
        assert "not a regular file" in str(raised) and str(fifo) in str(raised)


def test_removing_a_link_removes_the_link_not_its_target(tmp_path: Path) -> None:
    io = TorchCheckpointIO()
    real = tmp_path / "epoch=1.ckpt"
    io.save_checkpoint({"w": torch.ones(2)}, real)
    link = tmp_path / "last.ckpt"
    link.symlink_to(real)
    io.remove_checkpoint(link)
    assert not os.path.lexists(link) and real.exists()
    folder_link = tmp_path / "latest"
    folder_link.symlink_to(tmp_path, target_is_directory=True)
    io.remove_checkpoint(folder_link)
    assert not os.path.lexists(folder_link) and real.exists()


def test_snapshot_reuses_its_tensors_over_reused_buffers_and_only_them() -> None:
    from builtin_plugins.checkpoint_io.async_io import snapshot

    weights = torch.arange(12.0)
    state = {"w": weights, "view": weights[2:8].view(2, 3), "p": torch.nn.Parameter(torch.ones(3))}
    first, staged = snapshot(state)
    weights.add_(100)
    second, staged = snapshot(state, staged)
    # Same buffers, same tensors over them, new content; a view still views its copy.
    assert second["w"] is first["w"] and second["view"] is first["view"]
    assert torch.equal(second["w"], torch.arange(12.0) + 100)
    assert torch.equal(second["view"], (torch.arange(12.0) + 100)[2:8].view(2, 3))
    assert second["view"].untyped_storage().data_ptr() == second["w"].untyped_storage().data_ptr()
    assert type(second["p"]) is torch.nn.Parameter and second["p"].requires_grad
    # Another shape at the same key: a new tensor over a new buffer.
    state["view"] = weights[2:8].view(3, 2)
    third, staged = snapshot(state, staged)
    assert third["view"] is not second["view"] and third["view"].shape == (3, 2)
    assert torch.equal(third["view"], weights[2:8].view(3, 2))
    state["w"] = torch.zeros(12)  # a new storage: copied into the reused buffer, a new view
    fourth, _ = snapshot(state, staged)
    assert torch.equal(fourth["w"], torch.zeros(12)) and torch.equal(third["w"], torch.zeros(12))
