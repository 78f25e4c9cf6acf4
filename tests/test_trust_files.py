"""Files and variables a user passes, and the CLI's exit paths (issue 13, items 3, 18-20)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from builtin_plugins.environments.lsf import LSFEnvironment
from builtin_plugins.environments.mpi import MPIEnvironment
from builtin_plugins.environments.sge import SGEEnvironment
from builtin_plugins.environments.slurm import SLURMEnvironment
from builtin_plugins.environments.torchelastic import TorchElasticEnvironment
from plugin_registry import cli
from plugin_registry.errors import ConfigurationError, ResolutionError
from plugin_registry.kinds.cluster_environment import ClusterEnvironmentError
from plugin_registry.resolver import resolve
from plugin_registry.resolver.hardware import Hardware
from plugin_registry.resolver.lockfile import Lock
from plugin_registry.resolver.preferences import Preferences
from tests._support.errors import raises
from tests._support.support import REPO

pytestmark = pytest.mark.usefixtures("no_launcher_env")


# -- 3. the lock is written through the one atomic writer -------------------------


def test_lock_write_never_follows_a_planted_symlink(tmp_path: Path) -> None:
    lock = resolve(precision="32-true").lock()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    target = tmp_path / "plugins.lock"
    for pid in {os.getpid(), os.getpid() + 1}:
        (tmp_path / f".plugins.lock.{pid}.tmp").symlink_to(victim)
    lock.write(target)
    assert victim.read_text() == "precious"
    assert not target.is_symlink() and Lock.read(target) == lock
    assert [
        p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp") and not p.is_symlink()
    ] == []


def test_lock_write_keeps_the_old_lock_when_writing_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = resolve(precision="32-true").lock()
    target = tmp_path / "plugins.lock"
    lock.write(target)
    before = target.read_bytes()
    monkeypatch.setattr(json, "dumps", lambda *a, **k: "x" * 10 + str(1 / 0))
    with pytest.raises(ZeroDivisionError):
        lock.write(target)
    assert target.read_bytes() == before


# -- 19. files the user passes ----------------------------------------------------


def _good_lock(tmp_path: Path) -> dict:
    path = tmp_path / "good.lock"
    resolve(precision="32-true").lock().write(path)
    return json.loads(path.read_text())


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(format="1"), "format"),
        (lambda d: d.pop("plugins"), "plugins"),
        (lambda d: d["plugins"].update(precision=[]), "plugins.precision"),
        (lambda d: d["plugins"]["precision"].update(name=5), "plugins.precision.name"),
        (lambda d: d["plugins"]["precision"].update(bogus=1), "plugins.precision.bogus"),
        (lambda d: d.update(libraries=[]), "libraries"),
        (lambda d: d.update(settings={"precision": {"x": 1}}), "settings.precision"),
    ],
)
def test_malformed_lock_names_the_file_and_the_field(
    tmp_path: Path, mutate: object, field: str
) -> None:
    data = _good_lock(tmp_path)
    mutate(data)  # type: ignore[operator]
    path = tmp_path / "bad.lock"
    path.write_text(json.dumps(data))
    with raises(ConfigurationError, "lock") as info:
        Lock.read(path)
    message = str(info.value)
    assert "bad.lock" in message and repr(field) in message and "\n" not in message
    # A file problem, not a machine that differs.
    assert isinstance(info.value, ValueError) and not isinstance(info.value, ResolutionError)


@pytest.mark.parametrize("what", ["directory", "dev-zero", "deep", "binary", "fifo"])
def test_unreadable_user_files_are_one_line_errors(tmp_path: Path, what: str) -> None:
    path = tmp_path / "file.json"
    if what == "directory":
        path.mkdir()
    elif what == "dev-zero":
        path.symlink_to("/dev/zero")
    elif what == "deep":
        path.write_text("[" * 100_000 + "]" * 100_000)
    elif what == "binary":
        path.write_bytes(b"\xff\xfe\x00garbage")
    else:
        os.mkfifo(path)
    for load, subject in ((Lock.read, "lock"), (Hardware.load, "hardware")):
        with raises(ConfigurationError, subject) as info:
            load(path)
        assert "file.json" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"cpu_cores": "2"}, "cpu_cores"),
        ({"cpu_cores": 2, "devices": {"a": 1}}, "devices"),
        ({"cpu_cores": 2, "devices": [{"accelerator": "cuda", "index": "0"}]}, "devices[0].index"),
        ({"cpu_cores": 2, "devices": [{"accelerator": 3}]}, "devices[0].accelerator"),
        ({"cpu_cores": 2, "devices": [{"accelerator": "cuda", "properties": []}]}, "properties"),
        ({"cpu_cores": 2, "libraries": {"torch": 2}}, "libraries.torch"),
        ({"cpu_cores": 2, "cpu_dtypes": "float32"}, "cpu_dtypes"),
        ({"cpu_cores": True}, "cpu_cores"),
    ],
)
def test_malformed_hardware_record_names_the_field(
    tmp_path: Path, data: dict, field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "hw.json"
    path.write_text(json.dumps(data))
    with raises(
        ConfigurationError, "hardware", match=field.replace("[", r"\[").replace("]", r"\]")
    ):
        Hardware.load(path)
    monkeypatch.setenv("PLUGIN_REGISTRY_HARDWARE", str(path))
    proc = run_cli("resolve", "--precision", "32-true")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "hw.json" in proc.stderr


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ('[tool.plugin-registry]\npriority = { "a" = { x = 1 } }\n', "must be an integer"),
        ('[tool.plugin-registry]\nprefer = { "a" = 5 }\n', "distribution names"),
        ("[tool.plugin-registry\n", "not valid TOML"),
        ('[tool.plugin-registry]\npriority = { "a" = ' + "9" * 5000 + " }\n", "integer"),
        ("tool = 5\n[tool.plugin-registry]\n", "TOML"),
    ],
)
def test_malformed_pyproject_table_is_a_preferences_error(
    tmp_path: Path, toml: str, words: str
) -> None:
    (tmp_path / "pyproject.toml").write_text(toml)
    with raises(ConfigurationError, "preferences", match=words) as info:
        Preferences.load(tmp_path)
    assert "\n" not in str(info.value)


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plugin_registry.cli", *args],
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_write_lock_into_a_missing_directory_exits_2_in_one_line(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir" / "plugins.lock"
    proc = run_cli("resolve", "--precision", "32-true", "--write-lock", str(target))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("option", ["--lock", "--hardware"])
def test_cli_file_options_exit_2_in_one_line(tmp_path: Path, option: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": 1, "plugins": 3}')
    for path in (bad, tmp_path, tmp_path / "missing.json"):
        proc = run_cli("resolve", "--precision", "32-true", option, str(path))
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


# -- 20. encodings and closed pipes -------------------------------------------------


@pytest.mark.parametrize(
    "command", [["resolve", "--precision", "bf16-mixed"], ["list"], ["doctor"]]
)
def test_ascii_stdout_gets_ascii_tables(command: list[str]) -> None:
    proc = run_cli(*command, PYTHONIOENCODING="ascii")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout.isascii()
    assert "\\u" not in proc.stdout  # nothing shown as an escape: "..." for "…"
    if command[0] == "resolve":  # the doctor writes lines, the listing a table without box
        assert "+--" in proc.stdout or "|" in proc.stdout


@pytest.mark.parametrize(
    "command",
    [
        ["list"],
        ["list", "--json"],
        ["doctor"],
        ["show", "torch", "--kind", "checkpoint_io"],
        ["resolve"],
        ["hardware"],
        ["cache", "info"],
    ],
)
def test_closed_pipe_is_exit_0_for_every_command(command: list[str]) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "plugin_registry.cli", *command],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before anything was written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=180) == 0, err
    assert err == ""


def test_cli_in_process_survives_a_stdout_without_buffer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["plugins"]


# -- 18. launcher variables ---------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"SLURM_NODELIST": "node[1-100000000]"}, "more than the 100000"),
        ({"SLURM_NODELIST": "node[1-" + "9" * 5000 + "]"}, "more than 9 digits"),
        ({"SLURM_NODELIST": "node[¹-³]"}, "ASCII digits"),
        ({"SLURM_NODELIST": "node[1-3"}, "unbalanced"),
    ],
)
def test_slurm_host_lists_are_bounded(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], words: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ClusterEnvironmentError, match=words) as info:
        _ = SLURMEnvironment().hosts
    assert "SLURM_NODELIST" in str(info.value)


def test_main_address_reads_only_the_first_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_NODELIST", "gpu-[007-100000007],login")
    assert SLURMEnvironment().main_address == "gpu-007"
    monkeypatch.setenv("SLURM_NODELIST", "rack[2-3]-n[01-99999999]")
    assert SLURMEnvironment().main_address == "rack2-n01"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("2(x100000000)", "more than the 100000"),
        ("²(x2)", "not of the form"),
        ("2(x" + "9" * 5000 + ")", "not of the form"),
    ],
)
def test_slurm_tasks_per_node_is_bounded(
    monkeypatch: pytest.MonkeyPatch, value: str, words: str
) -> None:
    monkeypatch.setenv("SLURM_TASKS_PER_NODE", value)
    monkeypatch.setenv("SLURM_NTASKS", "2")
    with pytest.raises(ClusterEnvironmentError, match=words) as info:
        SLURMEnvironment().tasks_on_this_node()
    assert "SLURM_TASKS_PER_NODE" in str(info.value)


@pytest.mark.parametrize(
    ("env", "call", "words"),
    [
        ({"SLURM_PROCID": "-1"}, "global_rank", "SLURM_PROCID"),
        ({"SLURM_NTASKS": "0"}, "world_size", "out of range"),
        ({"SLURM_PROCID": "²"}, "global_rank", "not an integer"),
        ({"SLURM_PROCID": "\u0661"}, "global_rank", "not an integer"),  # Arabic-Indic one
        ({"SLURM_PROCID": "9" * 5000}, "global_rank", "not an integer"),
        ({"MASTER_PORT": "65536", "SLURM_JOB_ID": "1"}, "main_port", "out of range"),
        ({"MASTER_PORT": "0", "SLURM_JOB_ID": "1"}, "main_port", "out of range"),
        ({"SLURM_JOB_ID": "12³"}, "main_port", "does not end in digits"),
    ],
)
def test_slurm_numbers_are_checked_and_named(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], call: str, words: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    environment = SLURMEnvironment()
    with pytest.raises(ClusterEnvironmentError, match=words):
        attr = getattr(environment, call)
        attr() if callable(attr) else None


def test_non_utf8_variable_values_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    os.environb[b"RANK"] = b"\xff\xfe"
    try:
        monkeypatch.setenv("WORLD_SIZE", "2")
        with pytest.raises(ClusterEnvironmentError, match="RANK") as info:
            TorchElasticEnvironment().global_rank()
        str(info.value).encode("utf-8")  # printable: no lone surrogates raise
        assert "\\udcff" in str(info.value)
    finally:
        del os.environb[b"RANK"]
    os.environb[b"PMIX_NAMESPACE"] = b"ns-\xff"
    try:
        monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
        env = MPIEnvironment(use_mpi4py=False)
        assert 20000 <= env.main_port < 40000
    finally:
        del os.environb[b"PMIX_NAMESPACE"]


@pytest.mark.parametrize("content", ["/dev/zero", "binary", "huge", "directory", "fifo"])
def test_host_files_are_bounded_and_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: str
) -> None:
    path = tmp_path / "hosts"
    if content == "/dev/zero":
        path = Path("/dev/zero")
    elif content == "binary":
        path.write_bytes(b"node1 2\n\xff\xfe\x00\x01 3\n")
    elif content == "huge":
        with open(path, "wb") as fh:
            fh.truncate(64 * 1024 * 1024)
    elif content == "directory":
        path.mkdir()
    else:
        os.mkfifo(path)
    monkeypatch.setenv("PE_HOSTFILE", str(path))
    monkeypatch.setenv("JOB_ID", "7")
    monkeypatch.setenv("NSLOTS", "2")
    with pytest.raises(ClusterEnvironmentError, match="PE_HOSTFILE"):
        SGEEnvironment().slots()
    monkeypatch.setenv("LSB_DJOB_RANKFILE", str(path))
    with pytest.raises(ClusterEnvironmentError, match="LSB_DJOB_RANKFILE"):
        _ = LSFEnvironment().main_address


@pytest.mark.parametrize(
    "command", [["list"], ["list", "--json"], ["show", "torch"], ["resolve"], ["hardware"]]
)
def test_closed_stdout_is_one_error_line_not_a_traceback(command: list[str]) -> None:
    """Started with stdout closed (`>&-`), every command died with a raw traceback."""
    proc = subprocess.run(
        ["bash", "-c", 'exec "$0" -m plugin_registry.cli "$@" >&-', sys.executable, *command],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=False,
        stderr=subprocess.PIPE,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("plugin-registry: error: standard output is closed")


def test_open_writeback_writes_every_byte_and_starts_the_disk_on_each_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from plugin_registry import _atomic_write
    from plugin_registry.files import atomic_write, open_writeback

    started: list[tuple[int, int]] = []
    real = _atomic_write._start_writeback
    monkeypatch.setattr(_atomic_write, "WRITEBACK_STEP", 1000)
    monkeypatch.setattr(
        _atomic_write,
        "_start_writeback",
        lambda fd, off, n: (started.append((off, n)), real(fd, off, n)),
    )
    chunks = [os.urandom(n) for n in (300, 900, 50, 2500, 10)]
    with open_writeback(tmp_path / "a.bin", "xb") as fh:
        for chunk in chunks:
            fh.write(chunk)
        fh.flush()
        os.fsync(fh.fileno())
    assert (tmp_path / "a.bin").read_bytes() == b"".join(chunks)
    # Contiguous ranges from 0, each at least a step, the last bytes left to the fsync.
    assert started == [(0, 1200), (1200, 2550)]
    started.clear()
    atomic_write(tmp_path / "b.bin", lambda fh: [fh.write(c) for c in chunks])
    assert (tmp_path / "b.bin").read_bytes() == b"".join(chunks) and started
    started.clear()
    atomic_write(tmp_path / "c.bin", lambda fh: fh.write(b"x" * 5000), durable=False)
    assert started == []  # not durable: nothing waits for the disk, nothing to start early
    with pytest.raises(FileExistsError):
        open_writeback(tmp_path / "a.bin", "xb")
    with pytest.raises(ValueError, match="mode 'wb'"):
        open_writeback(tmp_path / "d.bin", "w")


def test_open_writeback_with_the_real_system_call(tmp_path: Path) -> None:
    from plugin_registry import _atomic_write
    from plugin_registry.files import open_writeback

    if not sys.platform.startswith("linux"):
        pytest.skip("sync_file_range is Linux's; elsewhere the file is a plain buffered one")
    assert _atomic_write._sync_file_range() is not None
    data = os.urandom(1 << 20) * 40  # 40 MB: two steps started before the fsync
    with open_writeback(tmp_path / "big.bin") as fh:
        fh.write(data)
        os.fsync(fh.fileno())
    assert (tmp_path / "big.bin").read_bytes() == data


def _cached_file(path: Path, megabytes: int) -> bytes:
    """A file of ``megabytes`` written, fsynced and in the page cache; its bytes."""
    data = os.urandom(1 << 20) * megabytes
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return data


def test_release_cached_pages_drops_the_cache_and_keeps_the_data(tmp_path: Path) -> None:
    from plugin_registry.files import release_cached_pages
    from tests._support.pagecache import require_droppable_page_cache, resident_fraction

    require_droppable_page_cache(tmp_path)
    data = _cached_file(tmp_path / "big.bin", 40)
    small = _cached_file(tmp_path / "small.bin", 2)
    assert resident_fraction(tmp_path / "big.bin") > 0.9
    release_cached_pages(tmp_path / "big.bin", min_bytes=32 << 20)
    release_cached_pages(tmp_path / "small.bin", min_bytes=32 << 20)  # below min_bytes
    assert resident_fraction(tmp_path / "big.bin") < 0.1
    assert resident_fraction(tmp_path / "small.bin") > 0.9
    assert (tmp_path / "big.bin").read_bytes() == data
    assert (tmp_path / "small.bin").read_bytes() == small
    # A link is not followed, a FIFO does not block, a missing file is no error.
    _cached_file(tmp_path / "target.bin", 4)
    (tmp_path / "link.bin").symlink_to(tmp_path / "target.bin")
    release_cached_pages(tmp_path / "link.bin")
    assert resident_fraction(tmp_path / "target.bin") > 0.9
    os.mkfifo(tmp_path / "fifo")
    release_cached_pages(tmp_path / "fifo")
    release_cached_pages(tmp_path / "missing.bin")


@pytest.mark.parametrize("durable", [True, False])
def test_a_durable_atomic_write_drops_the_replaced_files_cache_before_writing(
    tmp_path: Path, durable: bool
) -> None:
    from plugin_registry.files import atomic_write
    from tests._support.pagecache import require_droppable_page_cache, resident_fraction

    require_droppable_page_cache(tmp_path)
    target = tmp_path / "ck.bin"
    old = _cached_file(target, 40)
    os.link(target, tmp_path / "old.bin")  # the replaced file, watched past the rename
    seen: list[float] = []
    new = os.urandom(1 << 20) * 40

    def write(fh: Any) -> None:
        seen.append(resident_fraction(tmp_path / "old.bin"))
        fh.write(new)

    atomic_write(target, write, durable=durable)
    assert target.read_bytes() == new and (tmp_path / "old.bin").read_bytes() == old
    # Durable: the new file's writes get the old one's memory. Not durable: the old
    # file's pages may be dirty, and dropping them would write them first.
    assert (seen[0] < 0.1) if durable else (seen[0] > 0.9), seen
