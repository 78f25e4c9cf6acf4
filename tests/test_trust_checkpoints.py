"""Checkpoints at the edges: exit paths, file modes, planted names, bad paths (issue 13)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

from builtin_plugins.checkpoint_io.torch_io import TorchCheckpointIO
from plugin_registry._files import _host
from plugin_registry.kinds.checkpoint_io import CheckpointError
from tests._support.support import REPO


def run_script(code: str, tmp_path: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


_SLOW_IO = """
import sys, time, torch
from builtin_plugins.checkpoint_io.async_io import AsyncCheckpointIO
from builtin_plugins.checkpoint_io.torch_io import TorchCheckpointIO

class SlowIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint, path, storage_options=None):
        time.sleep(1.0)  # the script has long reached its end when this writes
        super().save_checkpoint(checkpoint, path, storage_options)
"""


def test_async_save_queued_by_the_last_line_is_written(tmp_path: Path) -> None:
    proc = run_script(
        _SLOW_IO
        + """
aio = AsyncCheckpointIO(SlowIO())
aio.save_checkpoint({"w": torch.arange(10)}, "last.pt")
""",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert torch.equal(torch.load(tmp_path / "last.pt")["w"], torch.arange(10))


def test_two_large_pending_saves_finish_at_exit(tmp_path: Path) -> None:
    proc = run_script(
        """
import torch
from builtin_plugins.checkpoint_io.async_io import AsyncCheckpointIO
aio = AsyncCheckpointIO("torch", max_pending=2)
big = torch.ones(24 * 1024 * 1024)  # 96 MB each
aio.save_checkpoint({"w": big}, "a.pt")
aio.save_checkpoint({"w": big * 2}, "b.pt")
""",
        tmp_path,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert torch.load(tmp_path / "a.pt", mmap=True)["w"][-1].item() == 1.0
    assert torch.load(tmp_path / "b.pt", mmap=True)["w"][-1].item() == 2.0
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_exception_after_queueing_still_saves(tmp_path: Path) -> None:
    proc = run_script(
        _SLOW_IO
        + """
aio = AsyncCheckpointIO(SlowIO())
aio.save_checkpoint({"step": torch.tensor(5)}, "c.pt")
raise RuntimeError("the training loop crashed")
""",
        tmp_path,
    )
    assert proc.returncode == 1 and "the training loop crashed" in proc.stderr
    assert torch.load(tmp_path / "c.pt")["step"].item() == 5


def test_failed_save_nobody_heard_of_is_reported_at_exit(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file, not a directory")
    proc = run_script(
        """
from builtin_plugins.checkpoint_io.async_io import AsyncCheckpointIO
aio = AsyncCheckpointIO("torch")
aio.save_checkpoint({"x": 1}, "blocker/c.pt")
""",
        tmp_path,
    )
    assert proc.returncode == 1
    assert "never reported" in proc.stderr and "blocker/c.pt" in proc.stderr


def test_sigterm_finishes_pending_saves_then_runs_the_previous_handler(tmp_path: Path) -> None:
    proc = run_script(
        _SLOW_IO
        + """
import os, signal
signal.signal(signal.SIGTERM, lambda *a: (print("previous handler ran", flush=True), sys.exit(3)))
aio = AsyncCheckpointIO(SlowIO())
aio.save_checkpoint({"w": torch.ones(3)}, "term.pt")
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(30)
print("not reached")
""",
        tmp_path,
    )
    assert proc.returncode == 3, proc.stderr
    assert "previous handler ran" in proc.stdout and "not reached" not in proc.stdout
    assert torch.equal(torch.load(tmp_path / "term.pt")["w"], torch.ones(3))


def test_sigterm_with_default_handler_saves_then_dies_of_sigterm(tmp_path: Path) -> None:
    proc = run_script(
        _SLOW_IO
        + """
import os, signal
aio = AsyncCheckpointIO(SlowIO())
aio.save_checkpoint({"w": torch.ones(2)}, "term.pt")
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(30)
""",
        tmp_path,
    )
    assert proc.returncode == -signal.SIGTERM
    assert torch.equal(torch.load(tmp_path / "term.pt")["w"], torch.ones(2))


def test_a_process_forked_during_a_save_exits_and_dies_on_sigterm(tmp_path: Path) -> None:
    """The child inherited the parent's pending save and waited for it at exit (and in its
    SIGTERM handler) forever: the guards belong to the process that made them."""
    proc = run_script(
        _SLOW_IO
        + """
import os, signal
aio = AsyncCheckpointIO(SlowIO())
aio.save_checkpoint({"w": torch.ones(2)}, "parent.pt")
quiet = os.fork()
if quiet == 0:
    sys.exit(0)  # a normal exit, with the parent's save still running there
busy = os.fork()
if busy == 0:
    time.sleep(60)  # killed by SIGTERM below
    os._exit(7)
_, status = os.waitpid(quiet, 0)
print("quiet child", os.waitstatus_to_exitcode(status), flush=True)
os.kill(busy, signal.SIGTERM)
_, status = os.waitpid(busy, 0)
print("busy child", os.waitstatus_to_exitcode(status), flush=True)
""",
        tmp_path,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "quiet child 0" in proc.stdout and f"busy child {-signal.SIGTERM}" in proc.stdout
    assert torch.equal(torch.load(tmp_path / "parent.pt")["w"], torch.ones(2))


def test_a_save_queued_by_an_earlier_exit_handler_is_written(tmp_path: Path) -> None:
    """Exit handlers run last-registered first: ours ran before the script's, whose save
    was then lost with exit status 0."""
    proc = run_script(
        _SLOW_IO
        + """
import atexit
holder = {}
atexit.register(lambda: holder["aio"].save_checkpoint({"w": torch.ones(4)}, "atexit.pt"))
holder["aio"] = AsyncCheckpointIO(SlowIO())
""",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert torch.equal(torch.load(tmp_path / "atexit.pt")["w"], torch.ones(4))


def test_sigterm_guard_is_installed_when_the_first_io_was_made_off_the_main_thread(
    tmp_path: Path,
) -> None:
    proc = run_script(
        _SLOW_IO
        + """
import os, signal, threading
worker = threading.Thread(target=lambda: AsyncCheckpointIO(SlowIO()))
worker.start(); worker.join()
aio = AsyncCheckpointIO(SlowIO())  # on the main thread
aio.save_checkpoint({"w": torch.ones(5)}, "term.pt")
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(30)
""",
        tmp_path,
    )
    assert proc.returncode == -signal.SIGTERM
    assert torch.equal(torch.load(tmp_path / "term.pt")["w"], torch.ones(5))


class _Tagged(torch.Tensor):
    """A tensor subclass with an attribute of its own, as quantization libraries make."""


def _odd_state() -> dict[str, object]:
    """What the async IO dropped or failed on: subclasses, Parameters, flags, views."""
    import torch.ao.nn.quantized as nnq

    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    tagged = torch.arange(4, dtype=torch.float32).as_subclass(_Tagged)
    tagged.scale_note = {"block": 64}
    with warnings.catch_warnings():  # torch.ao warns (once) that quantized tensors are old
        warnings.simplefilter("ignore", UserWarning)
        quantized = nnq.Linear(4, 2).state_dict()
    return {
        "tagged": tagged,
        "frozen": torch.nn.Parameter(torch.randn(3), requires_grad=False),
        "trained": torch.nn.Parameter(torch.randn(3)),
        "grad_flag": torch.randn(2, requires_grad=True),
        "base": base,
        "transposed": base.t(),  # strides (1, 4), the storage of base
        "row": base[1],  # offset 4, the storage of base
        "tied": [base, base],
        "quantized": quantized,
    }


def _tensors(value: object, path: str = "") -> dict[str, torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return {path: value}
    items = value.items() if isinstance(value, dict) else enumerate(value)  # type: ignore[attr-defined]
    out: dict[str, torch.Tensor] = {}
    for key, item in items:
        if isinstance(item, (torch.Tensor, dict, list, tuple)):
            out.update(_tensors(item, f"{path}/{key}"))
    return out


def _describe(state: dict[str, object]) -> dict[str, object]:
    """Everything a load gives back about each tensor, and which ones share storage."""
    tensors = _tensors(state)
    storages: dict[int, str] = {}
    out: dict[str, object] = {}
    for path, t in tensors.items():
        if t.is_quantized:
            per_channel = t.qscheme() == torch.per_channel_affine
            scales = t.q_per_channel_scales().tolist() if per_channel else t.q_scale()
            values: object = (t.int_repr().tolist(), t.qscheme(), scales)
        else:
            values = t.detach().tolist()
        owner = storages.setdefault(t.untyped_storage().data_ptr(), path)
        out[path] = (type(t).__name__, t.dtype, tuple(t.shape), t.stride(), t.storage_offset(),
                     t.requires_grad, values, dict(vars(t)), owner)  # fmt: skip
    return out


def test_async_saves_what_the_wrapped_io_saves(tmp_path: Path) -> None:
    """Issue 28 item 5: async dropped subclasses and their attributes, Parameters,
    requires_grad, strides and sharing, and raised an INTERNAL ASSERT on torch.ao."""
    from builtin_plugins.checkpoint_io.async_io import AsyncCheckpointIO

    aio = AsyncCheckpointIO(TorchCheckpointIO(), max_pending=1)
    for attempt in range(2):  # the second save copies into the first one's buffers
        state = _odd_state()
        if attempt:
            state["base"].mul_(3)  # type: ignore[attr-defined]
        TorchCheckpointIO().save_checkpoint(state, tmp_path / f"sync{attempt}.pt")
        expected = _describe(state)
        aio.save_checkpoint(state, tmp_path / f"async{attempt}.pt")
        state["base"].fill_(-1)  # type: ignore[attr-defined]  # after the call: not saved
        aio.wait()
        sync = torch.load(tmp_path / f"sync{attempt}.pt", weights_only=False)
        saved = torch.load(tmp_path / f"async{attempt}.pt", weights_only=False)
        assert _describe(sync) == expected
        assert _describe(saved) == expected
    aio.teardown()


def test_new_checkpoint_honours_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        TorchCheckpointIO().save_checkpoint({"a": 1}, tmp_path / "c.pt")
        assert stat.S_IMODE((tmp_path / "c.pt").stat().st_mode) == 0o644
        os.umask(0o077)
        TorchCheckpointIO().save_checkpoint({"a": 1}, tmp_path / "d.pt")
        assert stat.S_IMODE((tmp_path / "d.pt").stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_overwrite_keeps_the_existing_mode(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    TorchCheckpointIO().save_checkpoint({"a": 1}, path)
    path.chmod(0o640)
    TorchCheckpointIO().save_checkpoint({"a": 2}, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert torch.load(path)["a"] == 2


def test_directory_planted_under_a_stale_temporary_name_does_not_block(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    planted = tmp_path / f".c.pt.{_host()}.{int(dead.stdout)}.abc123.tmp"
    planted.mkdir()
    (planted / "inside").write_text("x")
    TorchCheckpointIO().save_checkpoint({"a": 1}, tmp_path / "c.pt")
    assert torch.load(tmp_path / "c.pt")["a"] == 1
    assert planted.is_dir()


@pytest.mark.parametrize(
    ("path", "words"),
    [("", "empty"), ("bad\0name.pt", "NUL"), ("   ", "empty")],
)
def test_bad_paths_are_checkpoint_errors(path: str, words: str) -> None:
    io = TorchCheckpointIO()
    with pytest.raises(CheckpointError, match=words):
        io.save_checkpoint({"a": 1}, path)
    with pytest.raises(CheckpointError, match=words):
        io.load_checkpoint(path)


def test_parent_that_is_a_file_is_a_checkpoint_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(CheckpointError, match="parent of the path is a file"):
        TorchCheckpointIO().save_checkpoint({"a": 1}, tmp_path / "file" / "c.pt")
