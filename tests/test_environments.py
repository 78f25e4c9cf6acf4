"""Cluster environments: the same answers as Lightning's, and better where it falls short."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import plugin_registry as pr
from builtin_plugins.environments.hostlist import expand_hostlist, tasks_per_node
from builtin_plugins.environments.lsf import LSFEnvironment
from builtin_plugins.environments.mpi import MPIEnvironment
from builtin_plugins.environments.slurm import SLURMEnvironment
from plugin_registry.kinds.cluster_environment import ClusterEnvironmentError
from tests._support.sitedir import StubEnvironment

lightning_envs = pytest.importorskip(
    "lightning.fabric.plugins.environments",
    reason="lightning is not installed (it is in the [test] extra)",
)


@pytest.fixture
def environ() -> Iterator[Callable[[dict[str, str]], None]]:
    """Replace os.environ wholesale for one scenario; restore it afterwards."""
    saved = dict(os.environ)

    def use(values: dict[str, str]) -> None:
        os.environ.clear()
        os.environ.update({k: v for k, v in saved.items() if k in ("PATH", "HOME")})
        os.environ.update(values)

    yield use
    os.environ.clear()
    os.environ.update(saved)


class Raised:
    """An answer that was an exception. Two are equal when one is an instance of the other's
    type: ours may be more specific (MissingVariableError) as long as ``except KeyError``
    written for Lightning still catches it."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Raised):
            return False
        return isinstance(self.exc, type(other.exc)) or isinstance(other.exc, type(self.exc))

    def __repr__(self) -> str:
        return f"raises {type(self.exc).__name__}({str(self.exc)[:60]!r})"


def answers(cls: Any, devices_nodes: list[tuple[int, int]], skip: tuple[str, ...] = ()) -> dict:
    """Everything an environment says, each answer or the exception it raised."""

    def ask(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:
            return Raised(exc)

    saved = dict(os.environ)
    try:
        out: dict[str, Any] = {"detect": ask(cls.detect)}
        try:
            env = cls()
        except Exception as exc:
            return {**out, "construct": Raised(exc)}
        for name in ("creates_processes_externally", "main_address", "main_port"):
            if name not in skip:
                out[name] = ask(lambda n=name: getattr(env, n))
        for name in ("world_size", "global_rank", "local_rank", "node_rank"):
            out[name] = ask(getattr(env, name))
        for d, n in devices_nodes:
            out[f"validate({d},{n})"] = ask(lambda d=d, n=n: env.validate_settings(d, n))
        return out
    finally:
        os.environ.clear()
        os.environ.update(saved)


VALIDATE = [(1, 1), (2, 1), (2, 2), (4, 1)]

SLURM_CASES = {
    "two-nodes": {
        "SLURM_NTASKS": "4",
        "SLURM_NTASKS_PER_NODE": "2",
        "SLURM_NNODES": "2",
        "SLURM_PROCID": "3",
        "SLURM_LOCALID": "1",
        "SLURM_NODEID": "1",
        "SLURM_NODELIST": "node[01-02]",
        "SLURM_JOB_ID": "1234567",
        "SLURM_JOB_NAME": "train",
        "SLURM_STEP_ID": "0",
    },
    "master-set": {
        "SLURM_NTASKS": "2",
        "SLURM_NTASKS_PER_NODE": "2",
        "SLURM_NNODES": "1",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "SLURM_NODELIST": "a,b",
        "MASTER_ADDR": "10.0.0.9",
        "MASTER_PORT": "4000",
        "SLURM_JOB_NAME": "job",
    },
    "spaces": {
        "SLURM_NTASKS": "1",
        "SLURM_NTASKS_PER_NODE": "1",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "SLURM_NODELIST": "host0 host1",
        "SLURM_JOB_ID": "77",
    },
    "range": {
        "SLURM_NTASKS": "1",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "SLURM_NODELIST": "host[5-9]",
        "SLURM_JOB_ID": "77",
    },
    "single-in-brackets": {
        "SLURM_NTASKS": "1",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "SLURM_NODELIST": "gpu[3]",
    },
    "interactive-shell": {
        "SLURM_NTASKS": "2",
        "SLURM_NTASKS_PER_NODE": "2",
        "SLURM_JOB_NAME": "interactive",
        "SLURM_NODELIST": "n1",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
    },
    "bash": {
        "SLURM_NTASKS": "1",
        "SLURM_JOB_NAME": "bash",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
    },
    "no-slurm": {},
}


@pytest.mark.parametrize("case", SLURM_CASES)
def test_slurm_matches_lightning(environ: Any, case: str) -> None:
    environ(SLURM_CASES[case])
    ours = answers(SLURMEnvironment, VALIDATE)
    theirs = answers(lightning_envs.SLURMEnvironment, VALIDATE)
    assert ours == theirs


def _torchelastic(**extra: str) -> dict[str, str]:
    return {
        "TORCHELASTIC_RUN_ID": "abc",
        "WORLD_SIZE": "4",
        "RANK": "2",
        "LOCAL_RANK": "0",
        "GROUP_RANK": "1",
        **extra,
    }


@pytest.mark.parametrize(
    "values",
    [
        _torchelastic(MASTER_ADDR="10.1.1.1", MASTER_PORT="29400"),
        _torchelastic(),
        {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0"},
    ],
    ids=["full", "no-master", "not-launched"],
)
def test_torchelastic_matches_lightning(environ: Any, values: dict[str, str]) -> None:
    environ(values)
    from builtin_plugins.environments.torchelastic import TorchElasticEnvironment

    assert answers(TorchElasticEnvironment, VALIDATE) == answers(
        lightning_envs.TorchElasticEnvironment, VALIDATE
    )


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"LOCAL_RANK": "1", "NODE_RANK": "2", "MASTER_ADDR": "1.2.3.4", "MASTER_PORT": "5555"},
        {"LOCAL_RANK": "0", "GROUP_RANK": "3", "MASTER_PORT": "1234"},
        {"STANDALONE_PORT": "4321"},
    ],
    ids=["bare", "manual", "group-rank", "standalone-port"],
)
def test_lightning_default_matches_lightning(environ: Any, values: dict[str, str]) -> None:
    environ(values)
    from builtin_plugins.environments.lightning import LightningEnvironment

    skip = () if "MASTER_PORT" in values or "STANDALONE_PORT" in values else ("main_port",)
    assert answers(LightningEnvironment, VALIDATE, skip) == answers(
        lightning_envs.LightningEnvironment, VALIDATE, skip
    )


def test_kubeflow_matches_lightning_except_detect(environ: Any) -> None:
    environ({"MASTER_ADDR": "job-master-0", "MASTER_PORT": "23456", "WORLD_SIZE": "3", "RANK": "2"})
    from builtin_plugins.environments.kubeflow import KubeflowEnvironment

    ours = answers(KubeflowEnvironment, VALIDATE)
    theirs = answers(lightning_envs.KubeflowEnvironment, VALIDATE)
    # Lightning's detect() raises NotImplementedError; ours says "no" so that
    # detection can go on to the next environment.
    assert ours.pop("detect") is False
    assert isinstance(theirs.pop("detect").exc, NotImplementedError)
    assert ours == theirs


@pytest.mark.parametrize("launch_first", [True, False])
def test_lsf_matches_lightning(environ: Any, tmp_path: Path, launch_first: bool) -> None:
    host = socket.gethostname()
    rankfile = tmp_path / "rankfile"
    hosts = ["launch", host, host, "other", "other"] if launch_first else ["launch", "o", host]
    rankfile.write_text("\n".join(hosts) + "\n")
    environ(
        {
            "LSB_JOBID": "4242",
            "LSB_DJOB_RANKFILE": str(rankfile),
            "JSM_NAMESPACE_SIZE": "4",
            "JSM_NAMESPACE_RANK": "1",
            "JSM_NAMESPACE_LOCAL_RANK": "1",
        }
    )
    assert answers(LSFEnvironment, VALIDATE) == answers(lightning_envs.LSFEnvironment, VALIDATE)


# -- better than Lightning ---------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "values", "message"),
    [
        (
            SLURMEnvironment,
            {"SLURM_PROCID": "x1"},
            "SLURM_PROCID='x1' is not an integer; is this process started by srun?",
        ),
        (SLURMEnvironment, {}, "SLURM_PROCID is not set; is this process started by srun?"),
        (
            MPIEnvironment,
            {"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "one"},
            "OMPI_COMM_WORLD_RANK='one' is not an integer; is this process started by mpirun?",
        ),
    ],
)
def test_bad_variables_name_the_variable_and_the_launcher(
    environ: Any, cls: Any, values: dict[str, str], message: str
) -> None:
    environ(values)
    env = cls(use_mpi4py=False) if cls is MPIEnvironment else cls()
    with pytest.raises(ClusterEnvironmentError) as info:
        env.global_rank()
    assert str(info.value) == message


def test_lsf_host_missing_from_rank_file_says_which(environ: Any, tmp_path: Path) -> None:
    rankfile = tmp_path / "rankfile"
    rankfile.write_text("launch\nnodeA\nnodeB\n")
    environ(
        {
            "LSB_JOBID": "1",
            "LSB_DJOB_RANKFILE": str(rankfile),
            "JSM_NAMESPACE_SIZE": "2",
            "JSM_NAMESPACE_RANK": "0",
            "JSM_NAMESPACE_LOCAL_RANK": "0",
        }
    )
    with pytest.raises(ClusterEnvironmentError) as info:
        LSFEnvironment().node_rank()
    assert repr(socket.gethostname()) in str(info.value)
    assert str(rankfile) in str(info.value) and "nodeA, nodeB" in str(info.value)
    environ({"LSB_DJOB_RANKFILE": str(tmp_path / "missing")})
    with pytest.raises(ClusterEnvironmentError, match="cannot read the LSF rank file"):
        _ = LSFEnvironment().main_address


def test_srun_step_inside_salloc_is_slurm(environ: Any) -> None:
    values = {
        "SLURM_NTASKS": "2",
        "SLURM_JOB_NAME": "interactive",
        "SLURM_STEP_ID": "0",
        "SLURM_PROCID": "1",
        "SLURM_LOCALID": "1",
        "SLURM_NODEID": "0",
        "SLURM_NODELIST": "n1",
        "SLURM_TASKS_PER_NODE": "2",
        "SLURM_NNODES": "1",
    }
    environ(values)
    assert SLURMEnvironment.detect()
    assert not lightning_envs.SLURMEnvironment.detect()
    SLURMEnvironment().validate_settings(2, 1)


def test_fewer_tasks_than_tasks_per_node_is_reported(environ: Any) -> None:
    # Lightning issue 20391: --ntasks=1 --ntasks-per-node=2 starts one process where
    # two are expected; Lightning accepts it and then hangs.
    environ(
        {
            "SLURM_NTASKS": "1",
            "SLURM_NTASKS_PER_NODE": "2",
            "SLURM_NNODES": "1",
            "SLURM_PROCID": "0",
            "SLURM_LOCALID": "0",
            "SLURM_NODEID": "0",
            "SLURM_JOB_NAME": "train",
        }
    )
    lightning_envs.SLURMEnvironment().validate_settings(2, 1)  # no complaint
    with pytest.raises(ClusterEnvironmentError, match=r"SLURM_NTASKS=1 task\(s\), fewer than"):
        SLURMEnvironment().validate_settings(2, 1)


def test_uneven_ntasks_is_reported(environ: Any) -> None:
    environ(
        {
            "SLURM_NTASKS": "3",
            "SLURM_TASKS_PER_NODE": "2,1",
            "SLURM_NNODES": "2",
            "SLURM_PROCID": "0",
            "SLURM_LOCALID": "0",
            "SLURM_NODEID": "0",
            "SLURM_JOB_NAME": "train",
        }
    )
    with pytest.raises(ClusterEnvironmentError, match="spread unevenly"):
        SLURMEnvironment().validate_settings(2, 2)
    environ(
        {
            "SLURM_NTASKS": "4",
            "SLURM_TASKS_PER_NODE": "2(x2)",
            "SLURM_NNODES": "2",
            "SLURM_PROCID": "0",
            "SLURM_LOCALID": "0",
            "SLURM_NODEID": "1",
            "SLURM_JOB_NAME": "train",
        }
    )
    SLURMEnvironment().validate_settings(2, 2)
    assert SLURMEnvironment().tasks_on_this_node() == 2


def test_reading_never_writes_os_environ(environ: Any, tmp_path: Path) -> None:
    environ(SLURM_CASES["two-nodes"])
    before = dict(os.environ)
    env = SLURMEnvironment()
    answers(SLURMEnvironment, VALIDATE)
    assert (env.main_address, env.main_port) == ("node01", 15000 + 4567)
    assert dict(os.environ) == before
    _ = lightning_envs.SLURMEnvironment().main_address
    assert os.environ.get("MASTER_ADDR") == "node01", "Lightning's writes; ours does not"


def test_export_distributed_env_is_the_one_place_and_teardown_undoes_it(environ: Any) -> None:
    environ({**SLURM_CASES["two-nodes"], "MASTER_PORT": "1111"})
    env = SLURMEnvironment()
    written = env.export_distributed_env()
    assert written == {
        "MASTER_ADDR": "node01",
        "MASTER_PORT": "1111",
        "WORLD_SIZE": "4",
        "RANK": "3",
        "LOCAL_RANK": "1",
    }
    assert all(os.environ[k] == v for k, v in written.items())
    env.teardown()
    assert "MASTER_ADDR" not in os.environ and os.environ["MASTER_PORT"] == "1111"
    assert "RANK" not in os.environ


def test_slurm_exposes_every_host(environ: Any) -> None:
    environ({"SLURM_NODELIST": "rack[1-2]-n[08-10],login"})
    assert SLURMEnvironment().hosts == [
        "rack1-n08",
        "rack1-n09",
        "rack1-n10",
        "rack2-n08",
        "rack2-n09",
        "rack2-n10",
        "login",
    ]


# -- the host-list parser ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "hosts"),
    [
        ("node1", ["node1"]),
        ("node[1-3]", ["node1", "node2", "node3"]),
        ("node[01-03,7]", ["node01", "node02", "node03", "node7"]),
        ("node[098-101]", ["node098", "node099", "node100", "node101"]),
        ("a,b[1-2],c", ["a", "b1", "b2", "c"]),
        ("gpu-[1-2]-x", ["gpu-1-x", "gpu-2-x"]),
        ("h0 h1", ["h0", "h1"]),
        ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
    ],
)
def test_hostlist_examples(text: str, hosts: list[str]) -> None:
    assert expand_hostlist(text) == hosts


@pytest.mark.parametrize("bad", ["node[1-", "node]1[", "node[a-b]", "node[3-1]", "n[1-2,]"])
def test_hostlist_errors(bad: str) -> None:
    with pytest.raises(ClusterEnvironmentError, match="host list"):
        expand_hostlist(bad)


ranges = st.lists(
    st.tuples(st.integers(0, 300), st.integers(0, 5), st.integers(1, 4)), min_size=1, max_size=3
)
groups = st.lists(
    st.tuples(st.from_regex(r"[a-z][a-z-]{0,5}", fullmatch=True), ranges), min_size=1, max_size=2
)


@given(st.lists(groups, min_size=1, max_size=4))
def test_hostlist_fuzz_round_trip(
    items: list[list[tuple[str, list[tuple[int, int, int]]]]],
) -> None:
    """Build an expression and, independently, the hosts it names; the parser agrees."""
    expression_items, expected = [], []
    for item in items:
        text_parts, choices = [], []
        for prefix, spans in item:
            numbers, texts = [], []
            for lo, extra, width in spans:
                hi = lo + extra
                lo_text = str(lo).zfill(width)
                hi_text = str(hi).zfill(width)
                pad = len(lo_text) if lo_text.startswith("0") and len(lo_text) > 1 else 0
                numbers += [str(n).zfill(pad) for n in range(lo, hi + 1)]
                texts.append(lo_text if lo == hi and lo_text == hi_text else f"{lo_text}-{hi_text}")
            text_parts.append(f"{prefix}[{','.join(texts)}]")
            choices.append([prefix + n for n in numbers])
        expression_items.append("".join(text_parts))
        combos = [""]
        for options in choices:
            combos = [c + o for c in combos for o in options]
        expected += combos
    assert expand_hostlist(",".join(expression_items)) == expected


def test_tasks_per_node() -> None:
    assert tasks_per_node("2(x3),1") == [2, 2, 2, 1]
    with pytest.raises(ClusterEnvironmentError, match="SLURM_TASKS_PER_NODE"):
        tasks_per_node("two")


# -- detection order ---------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, "lightning"),
        ({"TORCHELASTIC_RUN_ID": "x", **SLURM_CASES["two-nodes"]}, "torchelastic"),
        (SLURM_CASES["two-nodes"], "slurm"),
        ({**SLURM_CASES["two-nodes"], "OMPI_COMM_WORLD_SIZE": "4"}, "slurm"),
        ({"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "0"}, "mpi"),
        ({"OMPI_COMM_WORLD_SIZE": "1"}, "lightning"),
        ({"PMI_SIZE": "4", "PMI_RANK": "1"}, "mpi"),
        ({"JOB_ID": "3", "PE_HOSTFILE": "/x", "NSLOTS": "2"}, "sge"),
        (
            {
                "LSB_JOBID": "1",
                "LSB_DJOB_RANKFILE": "/f",
                "JSM_NAMESPACE_LOCAL_RANK": "0",
                "JSM_NAMESPACE_SIZE": "2",
            },
            "lsf",
        ),
        (SLURM_CASES["bash"], "lightning"),
        ({"MASTER_ADDR": "x", "MASTER_PORT": "1", "WORLD_SIZE": "2", "RANK": "0"}, "lightning"),
    ],
    ids=[
        "nothing",
        "torchrun-in-slurm",
        "slurm",
        "slurm-over-mpi",
        "openmpi",
        "mpi-of-one",
        "mpich",
        "sge",
        "lsf",
        "slurm-bash",
        "kubeflow-vars",
    ],
)
def test_detection_order(environ: Any, values: dict[str, str], expected: str) -> None:
    environ(values)
    assert pr.detect_environment(pr.Registry(cache=False)).name == expected


def test_a_third_party_environment_can_win_by_priority(environ: Any) -> None:
    class Vendor(StubEnvironment):
        @staticmethod
        def detect() -> bool:
            return "VENDOR_JOB" in os.environ

    def broken_detect() -> bool:
        raise RuntimeError("detect exploded")

    class Broken(Vendor):
        detect = staticmethod(broken_detect)  # type: ignore[assignment]

    registry = pr.Registry(cache=False)
    registry.register(Vendor, name="vendor", kind="cluster_environment", priority=65)
    registry.register(Broken, name="broken", kind="cluster_environment", priority=70)
    environ({"VENDOR_JOB": "1", "TORCHELASTIC_RUN_ID": "x"})
    with pytest.warns(pr.PluginWarning, match="detect exploded"):
        assert pr.detect_environment(registry).name == "vendor"
    environ({"TORCHELASTIC_RUN_ID": "x"})
    with pytest.warns(pr.PluginWarning):
        assert pr.detect_environment(registry).name == "torchelastic"
    order = [r.name for r in pr.detection_order(registry)]
    assert order[:5] == ["broken", "vendor", "ray", "torchelastic", "slurm"]
    assert order[-1] == "lightning"


def test_environment_modules_import_no_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, plugin_registry as pr\n"
        "for r in pr.list_plugins('cluster_environment'):\n"
        "    if r.available: pr.default_registry().load_target(r)\n"
        "pr.detect_environment()\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_lightnings_except_clauses_still_catch_our_errors(environ: Any) -> None:
    """Code written for Lightning catches KeyError for a missing launcher variable and
    ValueError for settings that contradict the launcher; ours are both, and still ours."""
    from plugin_registry.errors import ClusterEnvironmentError

    environ({"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_NNODES": "1"})
    env = SLURMEnvironment()
    with pytest.raises(KeyError) as missing:
        env.global_rank()
    assert missing.value.reason == "missing-variable"
    assert isinstance(missing.value, ClusterEnvironmentError)
    assert str(missing.value).startswith("SLURM_PROCID is not set")  # not quoted like a key
    with pytest.raises(ValueError) as mismatch:
        env.validate_settings(4, 1)
    assert isinstance(mismatch.value, ClusterEnvironmentError)
    assert mismatch.value.reason == "settings-mismatch"
    assert "Set devices=2" in str(mismatch.value)
    environ({"SLURM_NTASKS": "x"})
    with pytest.raises(ValueError, match="SLURM_NTASKS='x' is not an integer"):
        SLURMEnvironment().world_size()


@pytest.mark.parametrize(
    "values",
    [{}, {"LSB_DJOB_RANKFILE": "/nonexistent/rankfile"}, {"LSB_DJOB_RANKFILE": ""}],
    ids=["unset", "missing-file", "empty"],
)
def test_lsf_checks_at_construction_like_lightning(environ: Any, values: dict[str, str]) -> None:
    environ(values)
    ours = answers(LSFEnvironment, VALIDATE)
    theirs = answers(lightning_envs.LSFEnvironment, VALIDATE)
    assert "construct" in ours and ours == theirs


@pytest.mark.parametrize(
    "nodes", ["host0 host1 host3", "host0,host1,host3", "host[5-9]", "gpu[3]", "a[01-02],b[1,3]"]
)
def test_resolve_root_node_address_matches_lightning(nodes: str) -> None:
    theirs = lightning_envs.SLURMEnvironment.resolve_root_node_address(nodes)
    assert SLURMEnvironment.resolve_root_node_address(nodes) == theirs


# What Open MPI 4.1's mpirun gave ranks across two network-namespace hosts (recorded in
# tests/test_multinode.py's runs): mpirun on node1 with ranks there (node1:2,node2:2), and
# mpirun on node1 running no rank (--host node2:1,node3:2), where daemon 0 has no ranks.
_JOB = "1947926528"
_OMPI_HNP = f"{_JOB}.0;tcp://10.219.15.1:41211"


def _ompi(rank: int, local: int, local_size: int, size: int, daemon: int, **extra: str) -> dict:
    return {
        "OMPI_COMM_WORLD_SIZE": str(size),
        "OMPI_COMM_WORLD_RANK": str(rank),
        "OMPI_COMM_WORLD_LOCAL_RANK": str(local),
        "OMPI_COMM_WORLD_LOCAL_SIZE": str(local_size),
        "OMPI_MCA_orte_hnp_uri": _OMPI_HNP,
        "OMPI_MCA_orte_local_daemon_uri": f"1947926528.{daemon};tcp://10.219.15.{daemon + 1}:34229",
        "OMPI_MCA_orte_num_nodes": "2",
        "PMIX_NAMESPACE": "1947926529",
        **extra,
    }


@pytest.mark.parametrize(
    ("values", "node_rank", "main_address"),
    [
        (_ompi(0, 0, 2, 4, daemon=0), 0, "10.219.15.1"),
        (
            _ompi(3, 1, 2, 4, daemon=1, OMPI_MCA_orte_node_regex="node[1:1-2]@0(2)"),
            1,
            "10.219.15.1",
        ),
        (_ompi(0, 0, 1, 3, daemon=1, OMPI_MCA_orte_node_regex="node[1:1-3]@0(3)"), 0, None),
        (_ompi(2, 1, 2, 3, daemon=2, OMPI_MCA_orte_node_regex="node[1:1-3]@0(3)"), 1, None),
        (_ompi(2, 1, 2, 3, daemon=2), None, None),  # no node regex: unknown
        (_ompi(2, 1, 2, 3, daemon=3, OMPI_MCA_orte_node_regex="n[1:1-5]@0(5)"), None, None),
        (_ompi(2, 1, 2, 3, daemon=1, OMPI_MCA_orte_node_regex="node[1:1-2]@0(2"), None, None),
        (_ompi(0, 0, 2, 4, daemon=0, OMPI_MCA_orte_hnp_uri="1947926528.0;garbage"), 0, None),
        (
            _ompi(2, 1, 2, 3, daemon=1, OMPI_MCA_orte_local_daemon_uri="1947926528.one;tcp://x:1"),
            None,
            None,
        ),
        (_ompi(2, 1, 2, 3, daemon=1, OMPI_MCA_orte_num_nodes="2 nodes"), None, None),
        # Several interfaces: mpirun lists each, comma-separated, before the one port.
        (
            _ompi(
                0, 0, 2, 4, daemon=0, OMPI_MCA_orte_hnp_uri=f"{_JOB}.0;tcp://10.0.0.1,10.9.0.1:4000"
            ),
            0,
            "10.0.0.1",
        ),
        # IPv6 only: the address inside the brackets (it gave 'fe80:').
        (
            _ompi(0, 0, 2, 4, daemon=0, OMPI_MCA_orte_hnp_uri=f"{_JOB}.0;tcp6://[fd00::1]:4000"),
            0,
            "fd00::1",
        ),
        # Both: the IPv4 address first.
        (
            _ompi(
                0,
                0,
                2,
                4,
                daemon=0,
                OMPI_MCA_orte_hnp_uri=f"{_JOB}.0;tcp6://[fd00::1]:4001;tcp://10.0.0.7:4000",
            ),
            0,
            "10.0.0.7",
        ),
        # A count of thousands of digits: unknown (it raised a bare ValueError).
        (
            _ompi(2, 1, 2, 3, daemon=1, OMPI_MCA_orte_node_regex="n[1:1-2]@0(" + "9" * 5000 + ")"),
            None,
            None,
        ),
    ],
    ids=[
        "mpirun-node",
        "second-node",
        "login-node-first",
        "login-node-second",
        "no-regex",
        "gaps",
        "bad-regex",
        "bad-mpirun-uri",
        "bad-daemon-uri",
        "bad-node-count",
        "several-interfaces",
        "ipv6",
        "ipv4-and-ipv6",
        "huge-count",
    ],
)
def test_open_mpi_node_rank_and_main_address_across_hosts_without_mpi4py(
    environ: Callable[[dict[str, str]], None],
    values: dict[str, str],
    node_rank: int | None,
    main_address: str | None,
) -> None:
    environ(values)
    env = MPIEnvironment(use_mpi4py=False)
    if node_rank is None:
        with pytest.raises(ClusterEnvironmentError, match="pip install mpi4py"):
            env.node_rank()
    else:
        assert env.node_rank() == node_rank
    if main_address is None:
        with pytest.raises(ClusterEnvironmentError, match="export MASTER_ADDR"):
            _ = env.main_address
    else:
        assert env.main_address == main_address
