"""Each cluster environment forms a real gloo process group under its real launcher.

torchrun, Open MPI, SLURM and Grid Engine run here for real (.ci/setup installs
them; the fixtures start and stop the daemons). Kubeflow and LSF have no
launcher here: their workers are started with exactly the variables (and rank
file) that a PyTorchJob and jsrun give each process.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._support.clusters import GridEngine, Slurm, Unavailable, clean_env
from tests._support.support import REPO, TORCHRUN, free_port

pytestmark = pytest.mark.launcher

WORKER = str(REPO / "tests" / "workers" / "launcher_worker.py")


def results(out: Path, world: int) -> list[dict[str, Any]]:
    files = sorted(out.glob("rank-*.json"))
    assert len(files) == world, f"expected {world} workers to report, got {[f.name for f in files]}"
    return [json.loads(f.read_text()) for f in files]


def check_group(ranks: list[dict[str, Any]], environment: str, detected: str | None = None) -> None:
    world = len(ranks)
    assert sorted(r["global_rank"] for r in ranks) == list(range(world))
    for r in ranks:
        assert r["used"] == environment
        assert r["detected"] == (detected or environment)
        assert r["world_size"] == r["dist_world_size"] == world
        assert r["dist_rank"] == r["global_rank"]
        assert r["all_reduce_sum"] == world * (world + 1) / 2
        assert not r["torch_imported_by_detection"], "detection must not import torch"


def need(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.skip(f"not installed here: {', '.join(missing)} (bash .ci/setup installs them)")


def test_torchrun(tmp_path: Path) -> None:
    subprocess.run(
        [*TORCHRUN, "--nproc-per-node", "2", "--standalone", WORKER, str(tmp_path)],
        check=True,
        env=clean_env(),
        timeout=180,
        capture_output=True,
    )
    ranks = results(tmp_path, 2)
    check_group(ranks, "torchelastic")
    assert sorted(r["local_rank"] for r in ranks) == [0, 1]


@pytest.mark.parametrize("use_mpi4py", [True, False], ids=["mpi4py", "launcher-variables"])
def test_mpirun(tmp_path: Path, use_mpi4py: bool) -> None:
    need("mpirun")
    if use_mpi4py:
        pytest.importorskip("mpi4py", reason="mpi4py is not installed (bash .ci/setup installs it)")
    subprocess.run(
        [
            "mpirun",
            "--allow-run-as-root",
            "--oversubscribe",
            "-np",
            "2",
            sys.executable,
            WORKER,
            str(tmp_path),
            "mpi",
            json.dumps({"use_mpi4py": use_mpi4py}),
        ],
        check=True,
        env=clean_env(),
        timeout=180,
        capture_output=True,
    )
    ranks = results(tmp_path, 2)
    check_group(ranks, "mpi")
    for r in ranks:
        assert r["node_rank"] == 0 and r["local_rank"] == r["global_rank"]
        if use_mpi4py and r.get("lightning") is not None:
            # Lightning's MPIEnvironment, asked in the same process, agrees.
            assert r["lightning"] == {k: r[k] for k in r["lightning"]}


def running(cls: Any, label: str, directory: Path) -> Iterator[Any]:
    """Start a scheduler's daemons for the tests of a module; skip if it cannot run here."""
    try:
        cluster = cls(directory)
    except Unavailable as exc:
        pytest.skip(f"{label} cannot run here: {exc}")
    try:
        # A start that fails half-way still stops what it started.
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slurm]:
    yield from running(Slurm, "SLURM", tmp_path_factory.mktemp("slurm"))


def test_slurm_sbatch_with_srun(slurm: Slurm, tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text(f"#!/bin/sh\nsrun {sys.executable} {WORKER} {tmp_path}\n")
    slurm.run(
        "sbatch",
        "--wait",
        "-N1",
        "--ntasks-per-node=2",
        "-o",
        str(tmp_path / "out.txt"),
        str(script),
    )
    ranks = results(tmp_path, 2)
    check_group(ranks, "slurm")
    for r in ranks:
        assert r["main_address"] == socket.gethostname().split(".")[0]
        assert 15000 <= r["main_port"] < 25000


def test_slurm_ntasks_without_ntasks_per_node(slurm: Slurm, tmp_path: Path) -> None:
    # Lightning refuses `--ntasks=2` without --ntasks-per-node; tasks spread evenly are fine.
    script = tmp_path / "job.sh"
    script.write_text(f"#!/bin/sh\nsrun {sys.executable} {WORKER} {tmp_path}\n")
    slurm.run("sbatch", "--wait", "-n", "2", "-o", str(tmp_path / "out.txt"), str(script))
    check_group(results(tmp_path, 2), "slurm")


def test_slurm_step_inside_an_interactive_allocation(slurm: Slurm, tmp_path: Path) -> None:
    # salloc names the job "interactive"; Lightning then refuses SLURM. The srun step
    # inside it has SLURM_STEP_ID, which tells it from the allocation's own shell.
    slurm.run(
        "salloc", "-N1", "-n2", "-J", "interactive", "srun", sys.executable, WORKER, str(tmp_path)
    )
    ranks = results(tmp_path, 2)
    check_group(ranks, "slurm")


# -- Accelerate without `accelerate launch`: the environment plugin forms its state --

ACCELERATE_WORKER = str(REPO / "tests" / "workers" / "accelerate_worker.py")


@pytest.fixture(scope="module")
def accelerate_reference(tmp_path_factory: pytest.TempPathFactory) -> list[float]:
    """The losses of one process training on the whole global batch."""
    pytest.importorskip("accelerate", reason="accelerate is not installed (the [accelerate] extra)")
    out = tmp_path_factory.mktemp("accelerate-one-process")
    subprocess.run(
        [sys.executable, ACCELERATE_WORKER, str(out)],
        check=True,
        env=clean_env(OMP_NUM_THREADS="1"),
        timeout=180,
        capture_output=True,
    )
    losses: list[float] = json.loads((out / "rank-0.json").read_text())["losses"]
    return losses


def check_accelerate(out: Path, environment: str, reference: list[float]) -> None:
    ranks = results(out, 2)
    assert sorted(r["process_index"] for r in ranks) == [0, 1]
    for r in ranks:
        assert r["environment"] == environment
        # Accelerate's state was formed from what the plugin reports.
        assert r["num_processes"] == r["env_world_size"] == r["dist_world_size"] == 2
        assert r["process_index"] == r["env_global_rank"]
        assert r["local_process_index"] == r["env_local_rank"]
        assert r["distributed_type"] == "DistributedType.MULTI_CPU"
        assert r["all_reduce_sum"] == 3
        # DDP through prepare() on 2 x 4 samples trains as one process on 8.
        assert r["losses"] == pytest.approx(reference, rel=1e-5, abs=1e-7)


def test_accelerate_under_torchrun(tmp_path: Path, accelerate_reference: list[float]) -> None:
    subprocess.run(
        [*TORCHRUN, "--nproc-per-node", "2", "--standalone", ACCELERATE_WORKER, str(tmp_path)],
        check=True,
        env=clean_env(OMP_NUM_THREADS="1"),
        timeout=180,
        capture_output=True,
    )
    check_accelerate(tmp_path, "TorchElasticEnvironment", accelerate_reference)


def test_accelerate_under_mpirun(tmp_path: Path, accelerate_reference: list[float]) -> None:
    need("mpirun")
    subprocess.run(
        [
            *("mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2"),
            *("-x", "OMP_NUM_THREADS", sys.executable, ACCELERATE_WORKER, str(tmp_path)),
        ],
        check=True,
        env=clean_env(OMP_NUM_THREADS="1"),
        timeout=180,
        capture_output=True,
    )
    check_accelerate(tmp_path, "MPIEnvironment", accelerate_reference)


@pytest.mark.parametrize("named", [False, True], ids=["detected", "named"])
def test_accelerate_under_srun(
    slurm: Slurm, tmp_path: Path, accelerate_reference: list[float], named: bool
) -> None:
    script = tmp_path / "job.sh"
    command = f"srun {sys.executable} {ACCELERATE_WORKER} {tmp_path}" + (" slurm" if named else "")
    script.write_text(f"#!/bin/sh\nOMP_NUM_THREADS=1 {command}\n")
    out = tmp_path / "out.txt"
    try:
        slurm.run("sbatch", "--wait", "-N1", "--ntasks-per-node=2", "-o", str(out), str(script))
    except RuntimeError as exc:  # with what the job's processes said
        said = out.read_text()[-4000:] if out.exists() else "(no output file)"
        raise RuntimeError(f"{exc}\njob output:\n{said}") from None
    check_accelerate(tmp_path, "SLURMEnvironment", accelerate_reference)


def _cell_state() -> tuple[object, ...]:
    common = GridEngine.ROOT / "default" / "common"
    files = tuple(
        (common / n).read_bytes() if (common / n).exists() else None
        for n in ("host_aliases", "act_qmaster")
    )
    daemons = subprocess.run(["pgrep", "-x", "sge_qmaster|sge_execd"], capture_output=True)
    return (*files, daemons.stdout)


def test_grid_engine_start_that_fails_half_way_leaves_the_cell_as_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs before the module's Grid Engine fixture starts its daemons."""
    try:
        GridEngine(tmp_path / "failing")
    except Unavailable as exc:
        pytest.skip(f"Grid Engine cannot run here: {exc}")
    before = _cell_state()
    real = GridEngine._qconf
    failed: list[bool] = []

    def failing(self: GridEngine, *args: str, editor: str | None = None) -> str:
        if args[:1] == ("-Msconf",) and not failed:
            failed.append(True)
            raise RuntimeError("scheduler configuration refused (simulated)")
        return real(self, *args, editor=editor)

    monkeypatch.setattr(GridEngine, "_qconf", failing)
    with pytest.raises(RuntimeError, match="simulated"):
        next(running(GridEngine, "Grid Engine", tmp_path / "failing"))
    monkeypatch.setattr(GridEngine, "_qconf", real)
    assert _cell_state() == before, "files restored and no daemon left running"


@pytest.fixture(scope="module")
def grid_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GridEngine]:
    yield from running(GridEngine, "Grid Engine", tmp_path_factory.mktemp("sge"))


def test_grid_engine_qsub_pe(grid_engine: GridEngine, tmp_path: Path) -> None:
    # Grid Engine runs the job script once; the trainer starts one process per slot.
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"for i in $(seq 0 $((NSLOTS - 1))); do LOCAL_RANK=$i {sys.executable} {WORKER} "
        f"{tmp_path} & done\nwait\n"
    )
    grid_engine.qsub(
        "-pe",
        "smp",
        "2",
        "-o",
        str(tmp_path / "out.txt"),
        "-j",
        "y",
        "-v",
        f"PATH={os.environ['PATH']}",
        str(script),
    )
    ranks = results(tmp_path, 2)
    check_group(ranks, "sge")
    for r in ranks:
        assert r["node_rank"] == 0 and r["main_address"] == "localhost"
        assert r["creates_processes_externally"]


def test_accelerate_under_qsub(
    grid_engine: GridEngine, tmp_path: Path, accelerate_reference: list[float]
) -> None:
    # One process per slot started by the job script, as for Lightning above; the
    # Grid Engine plugin gives Accelerate the ranks.
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"for i in $(seq 0 $((NSLOTS - 1))); do OMP_NUM_THREADS=1 LOCAL_RANK=$i "
        f"{sys.executable} {ACCELERATE_WORKER} {tmp_path} & done\nwait\n"
    )
    grid_engine.qsub(
        *("-pe", "smp", "2", "-o", str(tmp_path / "out.txt"), "-j", "y"),
        *("-v", f"PATH={os.environ['PATH']}", str(script)),
    )
    check_accelerate(tmp_path, "SGEEnvironment", accelerate_reference)


def start_workers(
    tmp_path: Path, envs: list[dict[str, str]], name: str | None = None, worker: str = WORKER
) -> None:
    args = [sys.executable, worker, str(tmp_path)] + ([name] if name else [])
    procs = [subprocess.Popen(args, env=clean_env(**e)) for e in envs]
    assert [p.wait(timeout=180) for p in procs] == [0] * len(procs)


def test_kubeflow_pytorchjob_variables(tmp_path: Path) -> None:
    # What the PyTorchJob operator sets in each replica's pod (one process per pod):
    # MASTER_ADDR (the master replica's service), MASTER_PORT, WORLD_SIZE, RANK.
    port = str(free_port())
    envs = [
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
            "WORLD_SIZE": "2",
            "RANK": str(rank),
            "PYTHONUNBUFFERED": "1",
        }
        for rank in range(2)
    ]
    start_workers(tmp_path, envs, "kubeflow")
    ranks = results(tmp_path, 2)
    check_group(ranks, "kubeflow", detected="lightning")  # never auto-detected
    for r in ranks:
        assert r["local_rank"] == 0 and r["node_rank"] == r["global_rank"]


def jsrun_tasks(tmp_path: Path, **extra: str) -> tuple[str, Path, list[dict[str, str]]]:
    """What jsrun gives each of 2 tasks: LSB_JOBID, LSB_DJOB_RANKFILE (the launch node
    first, then one line per task on this host), JSM_NAMESPACE_SIZE / _RANK / _LOCAL_RANK;
    the job id, and the folder the workers write to."""
    host = socket.gethostname()
    rankfile = tmp_path / "rankfile"
    rankfile.write_text(f"launch-node\n{host}\n{host}\n")
    out = tmp_path / "out"
    out.mkdir()
    job_id = str(50000 + free_port() % 1000)
    envs = [
        {
            "LSB_JOBID": job_id,
            "LSB_DJOB_RANKFILE": str(rankfile),
            "JSM_NAMESPACE_SIZE": "2",
            "JSM_NAMESPACE_RANK": str(rank),
            "JSM_NAMESPACE_LOCAL_RANK": str(rank),
            **extra,
        }
        for rank in range(2)
    ]
    return job_id, out, envs


def test_lsf_jsrun_variables_and_rank_file(tmp_path: Path) -> None:
    # The main address is the first compute host, this one.
    job_id, out, envs = jsrun_tasks(tmp_path)
    start_workers(out, envs)
    ranks = results(out, 2)
    check_group(ranks, "lsf")
    for r in ranks:
        assert r["main_address"] == socket.gethostname()
        assert r["main_port"] == int(job_id) % 1000 + 10000


def test_accelerate_under_lsf_jsrun_variables(
    tmp_path: Path, accelerate_reference: list[float]
) -> None:
    # The LSF plugin (detected) gives Accelerate its state.
    _, out, envs = jsrun_tasks(tmp_path, OMP_NUM_THREADS="1")
    start_workers(out, envs, worker=ACCELERATE_WORKER)
    check_accelerate(out, "LSFEnvironment", accelerate_reference)
