"""The `ray` cluster environment: a real local Ray cluster, a TorchTrainer with 2 CPU workers.

The fixture starts `ray start --head --block` on loopback with 2 CPUs and stops it by
its PID (the blocking head stops the processes it started). tests/workers/ray_driver.py runs
the trainers; this file checks what every worker wrote.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import plugin_registry as pr
from plugin_registry.errors import ClusterEnvironmentError
from plugin_registry.requirements import check
from tests._support.support import REPO, free_port, require_script


def test_detection_imports_no_ray_outside_ray() -> None:
    code = (
        "import sys, plugin_registry as pr\n"
        "env = pr.detect_environment()\n"
        "assert env.name != 'ray' and 'ray' not in sys.modules, (env.name, 'ray' in sys.modules)\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=environ, check=True)


def test_outside_a_worker_it_is_not_detected_and_says_why() -> None:
    pytest.importorskip("ray.train", reason="ray[train] is not installed")
    env = pr.load("ray", kind="cluster_environment")
    assert not env.detect()  # ray imported, but this is no training worker
    with pytest.raises(ClusterEnvironmentError, match="inside a Ray Train worker only"):
        env.world_size()


def test_without_ray_the_record_names_the_install_command() -> None:
    record = pr.get("ray", kind="cluster_environment")
    unmet = check(record.requires, record.install_hint, lambda name: None)
    assert "pip install 'plugin-registry[ray]'" in unmet.fix
    assert record.priority > pr.get("torchelastic").priority > pr.get("slurm").priority


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("ray.train", reason="ray[train] is not installed (the [ray] extra)")
    ray = require_script("ray", "'ray[train]'")
    port = free_port()
    # Ray's socket paths must stay short: a directory of its own under /tmp.
    temp = Path("/tmp") / f"ray-{uuid.uuid4().hex[:8]}"
    log = tmp_path_factory.mktemp("ray") / "head.log"
    # Token authentication (on by default since Ray 2.5x) would make every client of this
    # loopback-only cluster depend on whichever ~/.ray/auth_token the last Ray wrote.
    environ = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    with open(log, "wb") as out:
        head = subprocess.Popen(
            [ray, "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
             "--port", str(port), "--num-cpus", "2", "--include-dashboard=false",
             "--disable-usage-stats", "--temp-dir", str(temp)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=environ,
        )  # fmt: skip
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"ray start exited with {head.returncode}: {log.read_text()}")
        probe = subprocess.run(
            [ray, "status", "--address", address], capture_output=True, check=False,
            env=environ,
        )  # fmt: skip
        if probe.returncode == 0:
            break
        time.sleep(1)
    else:
        head.kill()
        raise RuntimeError(f"the Ray head did not come up: {log.read_text()}")
    yield address
    os.killpg(head.pid, signal.SIGTERM)  # --block: the head stops what it started
    try:
        head.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()


@pytest.fixture(scope="module")
def trained(ray_cluster: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("ray-out")
    env = {**os.environ, "RAY_ADDRESS": ray_cluster, "PYTHONPATH": str(REPO),
           "RAY_AUTH_MODE": "disabled"}  # fmt: skip
    run = subprocess.run(
        [sys.executable, str(REPO / "tests" / "workers" / "ray_driver.py"), str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}


@pytest.mark.slow
def test_the_environment_agrees_with_ray_on_every_worker(trained: dict[str, Any]) -> None:
    for rank in (0, 1):
        worker = trained[f"run1-rank{rank}"]
        env, ray = worker["env"], worker["ray"]
        assert env["world_rank"] == ray["world_rank"] == rank
        assert env["local_rank"] == ray["local_rank"] == rank  # one node, two workers
        assert env["node_rank"] == ray["node_rank"] == 0
        assert env["world_size"] == ray["world_size"] == 2
        assert env["creates_processes_externally"] is True
        assert worker["detected"] == "ray"  # detect_environment() inside a worker
        assert worker["all_reduce"] == 3.0  # 1 + 2, over the group formed from its answers
    assert (
        trained["run1-rank0"]["env"]["main_address"] == trained["run1-rank1"]["env"]["main_address"]
    )


@pytest.mark.slow
def test_the_resolver_picks_ray_and_the_hardware_record_is_the_workers(
    trained: dict[str, Any],
) -> None:
    worker = trained["run1-rank0"]
    assert worker["resolved"] == "ray" and worker["reason"] == "detected"
    assert worker["hardware_libraries"]["ray"] == worker["ray_version"]
    assert worker["hardware_libraries"]["torch"] == worker["torch_version"]


@pytest.mark.slow
def test_a_checkpoint_reported_to_ray_resumes(trained: dict[str, Any]) -> None:
    assert trained["driver"]["first_error"] is None and trained["driver"]["second_error"] is None
    assert trained["driver"]["first_metrics"]["step"] == 20
    saved = trained["run1-rank0"]
    assert saved["losses"][1] < saved["losses"][0]  # bf16-mixed trained
    for rank in (0, 1):
        resumed = trained[f"run2-rank{rank}"]
        assert resumed["has_checkpoint"] and resumed["step"] == 20
        assert resumed["weight_sum"] == saved["weight_sum"]
