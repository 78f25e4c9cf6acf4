"""Jobs across several hosts, for real: network namespaces are the nodes.

Each node (tests/_support/nodes.py) has its own network stack, address and host
name; the file system is shared. torchrun (c10d rendezvous), SLURM (one slurmd
per node), Open MPI (``plm_rsh_agent`` into the other namespace) start the
processes; LSF and Kubeflow, which have no daemons here, get their variables and
rank file, one process per node and rank. Every job forms a gloo group across
the nodes from the environment's answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._support import nodes as nodes_module
from tests._support.clusters import SlurmOnNodes, Unavailable, clean_env
from tests._support.nodes import Nodes
from tests._support.support import REPO, TORCHRUN, free_port, require_script
from tests.test_launchers import WORKER, check_group, results
from tests.workers.elastic_worker import reference

pytestmark = [pytest.mark.launcher, pytest.mark.slow]

LAUNCHERS = REPO / "tests" / "workers"
ELASTIC = str(LAUNCHERS / "elastic_worker.py")
AGREE = str(LAUNCHERS / "agree_worker.py")
DCP = str(REPO / "tests" / "workers" / "dcp_worker.py")
RAY_DRIVER = str(LAUNCHERS / "ray_nodes_driver.py")


def build(count: int, directory: Path) -> Nodes:
    try:
        nodes = Nodes(count, directory)
        nodes.start()
    except Unavailable as exc:
        pytest.skip(f"no network namespaces for test nodes here: {exc}")
    return nodes


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nodes]:
    cluster = build(2, tmp_path_factory.mktemp("nodes"))
    try:
        yield cluster
    finally:
        cluster.stop()


def job_env(**extra: str) -> dict[str, str]:
    return clean_env(
        **{"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **extra}
    )


def torchrun(*args: str, nnodes: str = "2", rdzv_id: str = "job", **kw: str) -> list[str]:
    options = [f"--{k.replace('_', '-')}={v}" for k, v in kw.items()]
    return [
        *TORCHRUN,
        f"--nnodes={nnodes}",
        "--nproc-per-node=2",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint=node1:{free_port()}",
        f"--rdzv-id={rdzv_id}",
        *options,
        *args,
    ]


def on_every_node(
    nodes: Nodes, cmd: list[str], env: dict[str, str], timeout: float = 180
) -> list[subprocess.CompletedProcess[str]]:
    procs = [
        nodes.popen(n, *cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for n in nodes.nodes
    ]
    done = []
    for node, proc in zip(nodes.nodes, procs, strict=True):
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, ""))
        assert proc.returncode == 0, f"on {node.name}:\n{out[-4000:]}"
    return done


def report(ranks: list[dict[str, Any]]) -> None:
    """What the environment answered on each node (shown with ``pytest -s``)."""
    for r in sorted(ranks, key=lambda r: r["global_rank"]):
        print(
            f"{r['used']:>12} on {r['host']}: node {r['node_rank']}, rank {r['global_rank']}"
            f"/{r['world_size']}, local {r['local_rank']}, main {r['main_address']}:"
            f"{r['main_port']} -> {r['main_address_resolves_to']}"
        )


def check_nodes(ranks: list[dict[str, Any]], nodes: Nodes, per_node: int) -> None:
    """Each host holds ``per_node`` consecutive ranks and one node rank; rank 0's host is
    the main address, and it resolves to that node's address everywhere."""
    report(ranks)
    by_host: dict[str, list[dict[str, Any]]] = {}
    for r in ranks:
        by_host.setdefault(r["host"], []).append(r)
    assert sorted(by_host) == [n.name for n in nodes.nodes]
    address = {n.name: n.address for n in nodes.nodes}
    main_host = next(r["host"] for r in ranks if r["global_rank"] == 0)
    for group in by_host.values():
        assert len(group) == per_node
        (node_rank,) = {r["node_rank"] for r in group}
        assert sorted(r["local_rank"] for r in group) == list(range(per_node))
        for r in group:
            assert r["global_rank"] == node_rank * per_node + r["local_rank"], r
            assert r["main_address_resolves_to"] == address[main_host], r
    assert sorted({r["node_rank"] for r in ranks}) == list(range(len(nodes.nodes)))
    assert next(r for r in ranks if r["global_rank"] == 0)["node_rank"] == 0


# -- the nodes themselves ------------------------------------------------------------


def test_multinode_nodes_reach_each_other_by_name_and_nothing_else(tmp_path: Path) -> None:
    cluster = build(3, tmp_path)
    try:
        names = [n.name for n in cluster.nodes]
        assert names == ["node1", "node2", "node3"]
        assert len(cluster.namespaces()) == 4  # three nodes and the switch
        probe = (
            "import socket, sys\n"
            "print(socket.gethostname(), *(socket.gethostbyname(h) for h in sys.argv[1:]))\n"
            "try:\n"
            "    socket.create_connection((sys.argv[-1], 9), timeout=3)\n"
            "except OSError as exc:\n"
            "    print(exc.errno)\n"
        )
        outside = _an_address_of_this_machine()
        for node in cluster.nodes:
            out = cluster.run(node, sys.executable, "-c", probe, *names, outside).stdout.split()
            assert out[0] == node.name
            assert out[1:4] == [n.address for n in cluster.nodes]
            assert out[4] == outside  # a literal address resolves to itself ...
            assert out[5] == "101"  # ... and is unreachable: ENETUNREACH, no route out
        assert socket.gethostname() not in names, "this machine keeps its own name"
        for node in cluster.nodes:
            assert (nodes_module.NETNS_ETC / node.netns / "hosts").exists()
    finally:
        cluster.stop()
    assert cluster.namespaces() == []
    assert not any((nodes_module.NETNS_ETC / n.netns).exists() for n in cluster.nodes)


def _an_address_of_this_machine() -> str:
    out = subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True).stdout
    for link in json.loads(out):
        for info in link.get("addr_info", []):
            if not info["local"].startswith("127."):
                return str(info["local"])
    return "192.0.2.1"


def test_multinode_a_failed_start_removes_what_it_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Nodes._write_scripts

    def failing(self: Nodes) -> None:
        real(self)
        raise RuntimeError("scripts refused (simulated)")

    monkeypatch.setattr(Nodes, "_write_scripts", failing)
    cluster = Nodes(2, tmp_path)
    try:
        with pytest.raises(RuntimeError, match="simulated"):
            cluster.start()
    except Unavailable as exc:
        pytest.skip(f"no network namespaces for test nodes here: {exc}")
    assert cluster.namespaces() == []
    assert not any((nodes_module.NETNS_ETC / n.netns).exists() for n in cluster.nodes)


def test_multinode_without_root_or_net_admin_the_nodes_skip_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:
        m.setattr(nodes_module.os, "geteuid", lambda: 1000)
        with pytest.raises(Unavailable, match="made as root, and this is not root"):
            Nodes(2, tmp_path)
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to drop CAP_NET_ADMIN")
    # Root without CAP_NET_ADMIN / CAP_SYS_ADMIN (as in a locked-down container).
    code = (
        "import sys; from pathlib import Path\n"
        "from tests._support.nodes import Nodes\n"
        "from tests._support.clusters import Unavailable\n"
        "n = Nodes(2, Path(sys.argv[1]))\n"
        "try:\n"
        "    n.start()\n"
        "except Unavailable as exc:\n"
        "    print('unavailable:', exc)\n"
        "else:\n"
        "    n.stop()\n"
    )
    before = nodes_module._namespaces()
    out = subprocess.run(
        ["setpriv", "--bounding-set=-net_admin,-sys_admin", "--inh-caps=-net_admin,-sys_admin",
         sys.executable, "-c", code, str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert out.startswith("unavailable: cannot make a network namespace:"), out
    assert "not permitted" in out
    assert nodes_module._namespaces() == before


def test_multinode_namespaces_of_a_killed_run_are_removed_by_the_next(tmp_path: Path) -> None:
    # A run killed with SIGKILL cannot clean up: its namespaces carry its PID, and the
    # next start removes those whose process is gone.
    code = (
        "import sys, time; from pathlib import Path; from tests._support.nodes import Nodes\n"
        "n = Nodes(2, Path(sys.argv[1])); n.start(); print(n.tag, flush=True); time.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "killed")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        tag = proc.stdout.readline().strip()
        if not tag:
            pytest.skip("no network namespaces for test nodes here")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    left = [n for n in nodes_module._namespaces() if n.startswith(tag + "-")]
    assert len(left) == 3
    removed = nodes_module.remove_stale()
    assert sorted(removed) == sorted(left)
    assert not [n for n in nodes_module._namespaces() if n.startswith(tag + "-")]
    assert not any((nodes_module.NETNS_ETC / n).exists() for n in left)


# -- torchrun --------------------------------------------------------------------------


def test_multinode_torchrun_two_nodes(nodes: Nodes, tmp_path: Path) -> None:
    on_every_node(nodes, torchrun(WORKER, str(tmp_path)), job_env())
    ranks = results(tmp_path, 4)
    check_group(ranks, "torchelastic")
    check_nodes(ranks, nodes, per_node=2)
    for r in ranks:
        assert r["main_address"] == "node1"  # the rendezvous host's name, as torchrun gives it


def _train_until_saved(
    nodes: Nodes, root: Path, cmd: list[str], step: int
) -> list[subprocess.Popen[str]]:
    procs = [
        nodes.popen(n, *cmd, env=job_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for n in nodes.nodes
    ]
    log = root / "log.jsonl"
    deadline = time.time() + 120
    while not (log.exists() and f'"saved": {step}' in log.read_text()):
        if time.time() > deadline or any(p.poll() is not None for p in procs):
            for p in procs:
                p.kill()
            outs = [p.communicate()[0][-3000:] for p in procs]
            raise AssertionError(f"training never saved step {step}:\n" + "\n".join(outs))
        time.sleep(0.1)
    return procs


def _log(root: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (root / "log.jsonl").read_text().splitlines()]


def test_multinode_torchrun_lost_node_with_restarts_resumes_on_the_survivor(
    nodes: Nodes, tmp_path: Path
) -> None:
    # --nnodes 1:2: after node2 is lost the agent on node1 restarts its workers, the
    # rendezvous closes with node1 alone, and training resumes from the checkpoint.
    cmd = torchrun(
        ELASTIC, str(tmp_path), "--steps", "12", "--timeout", "15",
        nnodes="1:2", max_restarts="3", rdzv_conf="join_timeout=60,last_call_timeout=2",
    )  # fmt: skip
    procs = _train_until_saved(nodes, tmp_path, cmd, step=4)
    nodes.lose(nodes[1])
    try:
        out, _ = procs[0].communicate(timeout=240)
    finally:
        procs[1].wait(timeout=30)
        nodes.reconnect(nodes[1])
    assert procs[0].returncode == 0, out[-4000:]
    log = _log(tmp_path)
    starts = [e for e in log if "start" in e]
    assert starts[0] == {
        "start": 1,
        "restart": 0,
        "world": 4,
        "hosts": [["node1", 0, 0], ["node1", 0, 1], ["node2", 1, 0], ["node2", 1, 1]],
    }
    last = starts[-1]
    assert last["restart"] >= 1 and last["world"] == 2
    assert last["hosts"] == [["node1", 0, 0], ["node1", 0, 1]]
    saved = [e["saved"] for e in log if "saved" in e]
    assert last["start"] - 1 in saved and last["start"] - 1 >= 4, "resumed from a checkpoint"
    # Data parallel over a fixed global batch: the weights are those of one process.
    weights = next(e["weights"] for e in log if "done" in e)
    assert weights == pytest.approx(reference(12), abs=1e-5)


def test_multinode_torchrun_lost_node_without_restarts_fails_within_the_timeout(
    nodes: Nodes, tmp_path: Path
) -> None:
    timeout = 15
    cmd = torchrun(ELASTIC, str(tmp_path), "--steps", "40", "--timeout", str(timeout))
    procs = _train_until_saved(nodes, tmp_path, cmd, step=4)
    nodes.lose(nodes[1])
    lost = time.monotonic()
    try:
        out, _ = procs[0].communicate(timeout=timeout + 90)
    finally:
        procs[1].wait(timeout=30)
        nodes.reconnect(nodes[1])
    took = time.monotonic() - lost
    assert procs[0].returncode != 0
    assert took < timeout + 45, f"the survivors took {took:.0f} s to fail"
    assert "elastic_worker: RuntimeError:" in out
    assert "Timed out waiting 15000ms" in out or "Connection reset" in out, out[-3000:]
    assert "ChildFailedError" in out
    assert not any("done" in e for e in _log(tmp_path))


# -- SLURM ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slurm(nodes: Nodes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmOnNodes]:
    try:
        cluster = SlurmOnNodes(nodes, tmp_path_factory.mktemp("slurm-nodes"))
    except Unavailable as exc:
        pytest.skip(f"SLURM cannot run here: {exc}")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def check_slurm(ranks: list[dict[str, Any]], nodes: Nodes) -> None:
    check_group(ranks, "slurm")
    check_nodes(ranks, nodes, per_node=2)
    for r in ranks:
        assert r["main_address"] == "node1"  # the first host of node[1-2]
        assert r["nodelist"] == "node[1-2]"


def test_multinode_slurm_sbatch_two_nodes(slurm: SlurmOnNodes, tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text(
        f"#!/bin/sh\nexport PYTHONPATH={REPO}\nsrun {sys.executable} {WORKER} {tmp_path}\n"
    )
    state = slurm.submit_and_wait(
        "-N2", "--ntasks-per-node=2", "-o", str(tmp_path / "out.txt"), str(script)
    )
    assert state == "COMPLETED", (tmp_path / "out.txt").read_text()
    check_slurm(results(tmp_path, 4), slurm.nodes)


def test_multinode_slurm_salloc_two_nodes(slurm: SlurmOnNodes, tmp_path: Path) -> None:
    slurm.run(
        "salloc", "-N2", "--ntasks-per-node=2", "srun", sys.executable, WORKER, str(tmp_path),
        env_extra={"PYTHONPATH": str(REPO)},
    )  # fmt: skip
    check_slurm(results(tmp_path, 4), slurm.nodes)


# -- Open MPI ---------------------------------------------------------------------------


@pytest.mark.parametrize("use_mpi4py", [True, False], ids=["mpi4py", "launcher-variables"])
def test_multinode_mpirun_two_hosts(nodes: Nodes, tmp_path: Path, use_mpi4py: bool) -> None:
    if use_mpi4py:
        pytest.importorskip("mpi4py", reason="mpi4py is not installed (bash .ci/setup installs it)")
    mpirun = [
        "mpirun", "--allow-run-as-root", "-np", "4", "--host", "node1:2,node2:2",
        "--mca", "plm_rsh_agent", str(nodes.bin / "rsh"),
        sys.executable, WORKER, str(tmp_path), "mpi", json.dumps({"use_mpi4py": use_mpi4py}),
    ]  # fmt: skip
    nodes.run(nodes[0], *mpirun, env=job_env(), timeout=180)
    ranks = results(tmp_path, 4)
    check_group(ranks, "mpi")
    check_nodes(ranks, nodes, per_node=2)
    for r in ranks:
        # mpi4py: rank 0's host name; without it, mpirun's address (its node runs rank 0).
        assert r["main_address"] == ("node1" if use_mpi4py else nodes[0].address)
        if use_mpi4py and r.get("lightning") is not None:
            assert r["lightning"] == {k: r[k] for k in r["lightning"]}


# -- Ray: a head on node1, a worker node on node2 ------------------------------------------


@pytest.fixture(scope="module")
def ray_nodes(nodes: Nodes) -> Iterator[str]:
    """A Ray cluster of two nodes, one ``node-slot`` each; stopped by process group."""
    pytest.importorskip("ray.train", reason="ray[train] is not installed (the [ray] extra)")
    ray = require_script("ray", "'ray[train]'")
    port = 6379
    address = f"{nodes[0].address}:{port}"
    # Token authentication is on by default since Ray 2.5x; this cluster sees only its nodes.
    env = job_env(RAY_AUTH_MODE="disabled")
    tag = uuid.uuid4().hex[:8]
    common = [
        "--block", "--num-cpus", "1", "--resources", json.dumps({"node-slot": 1}),
        "--object-store-memory", str(100 * 2**20), "--disable-usage-stats",
    ]  # fmt: skip
    starts = [
        [ray, "start", "--head", "--port", str(port), "--include-dashboard=false", *common],
        [ray, "start", "--address", address, *common],
    ]
    procs: list[subprocess.Popen[str]] = []
    try:
        for node, start in zip(nodes.nodes, starts, strict=True):
            # Ray's socket paths must stay short: a directory of its own under /tmp.
            cmd = [
                *start,
                "--node-ip-address",
                node.address,
                "--temp-dir",
                f"/tmp/ray-{tag}-{node.index}",
            ]
            procs.append(
                nodes.popen(
                    node, *cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )  # fmt: skip
            _wait_for_ray_nodes(nodes, address, node.index + 1, env, procs)
        yield address
    finally:
        for proc in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # Ray's own daemons leave the group; each names its session under the temp dir.
        for node in nodes.nodes:
            for pid in nodes.pids(node):
                with contextlib.suppress(OSError):
                    if f"/tmp/ray-{tag}-".encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                        os.kill(pid, signal.SIGKILL)
            shutil.rmtree(f"/tmp/ray-{tag}-{node.index}", ignore_errors=True)


def _wait_for_ray_nodes(
    nodes: Nodes, address: str, count: int, env: dict[str, str], procs: list[subprocess.Popen[str]]
) -> None:
    probe = (
        "import ray, sys\n"
        "ray.init(address=sys.argv[1], logging_level='error')\n"
        "print(sum(1 for n in ray.nodes() if n['Alive']))\n"
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a `ray start` exited early")
        proc = subprocess.run(
            nodes.command(nodes[0], sys.executable, "-c", probe, address),
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if proc.returncode == 0 and proc.stdout.split()[-1:] == [str(count)]:
            return
        time.sleep(1)
    raise RuntimeError(f"the Ray cluster never had {count} live node(s)")


def test_multinode_ray_train_one_worker_per_node(
    nodes: Nodes, ray_nodes: str, tmp_path: Path
) -> None:
    env = job_env(RAY_ADDRESS=ray_nodes, RAY_AUTH_MODE="disabled")
    nodes.run(nodes[0], sys.executable, RAY_DRIVER, str(tmp_path), env=env, timeout=300)
    workers = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("rank-*.json"))]
    assert len(workers) == 2
    assert sorted(w["host"] for w in workers) == ["node1", "node2"]
    address = {n.name: n.address for n in nodes.nodes}
    rank0_host = next(w["host"] for w in workers if w["env"]["world_rank"] == 0)
    for w in workers:
        env_answers, ray = w["env"], w["ray"]
        for key in ("world_rank", "local_rank", "node_rank", "world_size"):
            assert env_answers[key] == ray[key], (key, w)
        assert env_answers["local_rank"] == 0 and env_answers["world_size"] == 2
        assert env_answers["main_address"] == address[rank0_host]
        assert w["detected"] == "ray"
        assert w["all_reduce"] == 3.0
    assert sorted(w["env"]["node_rank"] for w in workers) == [0, 1]
    for w in sorted(workers, key=lambda w: w["env"]["world_rank"]):
        e = w["env"]
        print(
            f"{'ray':>12} on {w['host']}: node {e['node_rank']}, rank {e['world_rank']}"
            f"/{e['world_size']}, local {e['local_rank']}, main {e['main_address']}:"
            f"{e['main_port']}"
        )


# -- LSF and Kubeflow: their variables, one process per node and rank --------------------


def start_on_nodes(
    nodes: Nodes, out: Path, per_node: list[list[dict[str, str]]], name: str | None = None
) -> None:
    args = [sys.executable, WORKER, str(out)] + ([name] if name else [])
    procs = [
        nodes.popen(
            node, *args, env=job_env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for node, envs in zip(nodes.nodes, per_node, strict=True)
        for env in envs
    ]
    for proc in procs:
        out_text, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, out_text[-3000:]


def test_multinode_lsf_rank_file_across_nodes(nodes: Nodes, tmp_path: Path) -> None:
    rankfile = tmp_path / "rankfile"
    rankfile.write_text("login1\nnode1\nnode1\nnode2\nnode2\n")  # the launch node first
    job_id = str(60000 + free_port() % 1000)
    per_node = [
        [
            {
                "LSB_JOBID": job_id,
                "LSB_DJOB_RANKFILE": str(rankfile),
                "JSM_NAMESPACE_SIZE": "4",
                "JSM_NAMESPACE_RANK": str(2 * node + local),
                "JSM_NAMESPACE_LOCAL_RANK": str(local),
            }
            for local in range(2)
        ]
        for node in range(2)
    ]
    start_on_nodes(nodes, tmp_path, per_node)
    ranks = results(tmp_path, 4)
    check_group(ranks, "lsf")
    check_nodes(ranks, nodes, per_node=2)
    for r in ranks:
        assert r["main_address"] == "node1" and r["main_port"] == int(job_id) % 1000 + 10000


def test_multinode_kubeflow_pytorchjob_across_nodes(nodes: Nodes, tmp_path: Path) -> None:
    # A PyTorchJob with a master and one worker replica, one pod (process) per node;
    # MASTER_ADDR is the master's service name.
    port = str(free_port())
    per_node = [
        [{"MASTER_ADDR": "node1", "MASTER_PORT": port, "WORLD_SIZE": "2", "RANK": str(rank)}]
        for rank in range(2)
    ]
    start_on_nodes(nodes, tmp_path, per_node, "kubeflow")
    ranks = results(tmp_path, 2)
    check_group(ranks, "kubeflow", detected="lightning")  # never auto-detected
    check_nodes(ranks, nodes, per_node=1)


# -- every rank agrees on its plugins -----------------------------------------------------


def test_multinode_resolve_on_all_ranks_names_the_node_that_differs(
    nodes: Nodes, tmp_path: Path
) -> None:
    import importlib.metadata

    here = importlib.metadata.version("bitsandbytes")
    other = "0.46.1" if here != "0.46.1" else "0.47.0"
    shadow = tmp_path / "node2-site"
    meta = shadow / f"bitsandbytes-{other}.dist-info"
    meta.mkdir(parents=True)
    (meta / "METADATA").write_text(f"Metadata-Version: 2.1\nName: bitsandbytes\nVersion: {other}\n")
    out = tmp_path / "out"
    out.mkdir()
    cmd = torchrun(AGREE, str(out))
    procs = [
        nodes.popen(
            node, *cmd,
            env=job_env(PYTHONPATH=f"{shadow}:{REPO}" if node.index == 1 else str(REPO)),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        for node in nodes.nodes
    ]  # fmt: skip
    for proc in procs:
        text, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, text[-3000:]
    answers = [json.loads((out / f"agree-{r}.json").read_text()) for r in range(4)]
    assert [a["host"] for a in answers] == ["node1", "node1", "node2", "node2"]
    expected = (
        f"ranks 2, 3 on node2 differ from rank 0 on node1: library bitsandbytes: "
        f"{here} on node1 (rank 0), {other} on node2 (ranks 2, 3)"
    )
    for a in answers:
        assert "names" not in a, f"rank {a['rank']} on {a['host']} went on"
        assert expected in a["error"], a["error"]
        assert "rank 1" not in a["error"]  # rank 1 agrees with rank 0


# -- a sharded checkpoint saved by two nodes, loaded on one --------------------------------


def test_multinode_distributed_checkpoint_saved_on_two_nodes_loads_on_three_ranks(
    nodes: Nodes, tmp_path: Path
) -> None:
    root = tmp_path / "ckpt"
    cmd = torchrun(DCP, str(root), "--io", "distributed", "--steps", "4", "--every", "2")
    runs = on_every_node(nodes, cmd, job_env(), timeout=300)
    lines = [
        json.loads(line)
        for run in runs
        for line in str(run.stdout).splitlines()
        if line.startswith("{")
    ]
    saved = {ln["saved"]: ln["digest"] for ln in lines if "saved" in ln}
    assert sorted(saved) == [2, 4]
    shards = sorted(p.name for p in (root / "step-4").glob("data-*/*.distcp"))
    assert len(shards) == 4, f"every rank of both nodes wrote its shards: {shards}"
    one_node = [
        *TORCHRUN, "--standalone", "--nproc-per-node=3",
        DCP, str(root), "--io", "distributed", "--resume", "--steps", "4",
    ]  # fmt: skip
    proc = nodes.run(nodes[0], *one_node, env=job_env(), timeout=300)
    resumed = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith('{"resumed')]
    assert resumed == [{"resumed": 4, "digest": saved[4], "world": 3}]
