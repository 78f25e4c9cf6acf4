"""The resolver: a table of (hardware, settings) -> resolution or error, and its rules."""

from __future__ import annotations

import importlib.metadata
import json
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

import plugin_registry as pr
from plugin_registry.errors import ConfigurationError, PluginRegistryWarning, ResolutionError
from plugin_registry.registry import Registry
from plugin_registry.resolver import resolve
from plugin_registry.resolver.hardware import Hardware
from plugin_registry.resolver.lockfile import Lock
from plugin_registry.resolver.preferences import Preferences
from tests._support.errors import raises
from tests._support.resolver_cases import CASES, CPU, Case, H100x2, machine
from tests._support.support import REPO, free_port

# Each case sets exactly the launcher variables it is about.
pytestmark = pytest.mark.usefixtures("no_launcher_env")


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
    # every built-in precision plugin appears as an expected answer at least once
    expected = {c.precision for c in CASES if c.precision}
    for record in pr.list_plugins("precision"):
        stem = record.name.split("{")[0]
        assert any(name.startswith(stem) for name in expected), record.name


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_table(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in case.environ.items():
        monkeypatch.setenv(key, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginRegistryWarning)
        if case.error:
            with pytest.raises(pr.PluginRegistryError) as e:
                resolve(hardware=case.hardware, preferences=Preferences(), **case.settings)
            assert case.error in str(e.value)
            return
        res = resolve(hardware=case.hardware, preferences=Preferences(), **case.settings)
    assert res.names() == {
        "precision": case.precision,
        "checkpoint_io": case.checkpoint_io,
        "cluster_environment": case.environment,
    }
    if case.strategy:
        assert res.settings.strategy == case.strategy
    if case.note:
        assert any(case.note in n for n in res.notes), res.notes
    # whatever was chosen can be explained and written down
    assert case.precision in res.explain()
    json.dumps(res.to_dict())


def test_16_mixed_on_cpu_warns_like_lightning() -> None:
    with pytest.warns(PluginRegistryWarning, match="using 'bf16-mixed' instead") as caught:
        res = resolve(precision="16-mixed", hardware=CPU, preferences=Preferences())
    assert res.precision.name == "bf16-mixed"
    assert caught[0].filename == __file__  # the warning points at the caller's line


def test_explicit_plugin_wins_even_when_ranked_lower() -> None:
    res = resolve(plugins=["async-torch"], hardware=CPU, preferences=Preferences())
    assert res.checkpoint_io.name == "async-torch"
    assert res.checkpoint_io.reason == "explicitly requested"
    auto = resolve(hardware=CPU, preferences=Preferences())
    ranked = [c.name for c in auto.candidates["checkpoint_io"]]
    assert ranked.index("torch") < ranked.index("async-torch")


def test_instances_and_records_are_accepted_as_plugins() -> None:
    from builtin_plugins.precision.half import HalfPrecision

    instance = HalfPrecision("bf16-true")
    record = pr.get("slurm")
    res = resolve(plugins=[instance, record], hardware=CPU, preferences=Preferences())
    assert res.precision.instance is instance
    assert res.cluster_environment.name == "slurm"
    built = res.load()
    assert built[0] is instance
    assert type(built[2]).__name__ == "SLURMEnvironment"
    with raises(ConfigurationError, "setting", match="neither a plugin name"):
        resolve(plugins=[object()], hardware=CPU, preferences=Preferences())


def test_rejections_give_every_reason() -> None:
    res = resolve(
        precision="bf16-mixed", strategy="fsdp", devices=2, hardware=CPU, preferences=Preferences()
    )
    by_name = {c.name: c for c in res.candidates["precision"]}
    assert by_name["fsdp-bf16-mixed"].accepted
    assert "strategy 'fsdp' needs FSDPPrecision" in by_name["bf16-mixed"].reasons[0]
    assert "made for strategy deepspeed" in by_name["deepspeed-bf16-mixed"].reasons[0]
    # accepted candidates come first, each slot's list is ranked
    verdicts = [c.accepted for c in res.candidates["precision"]]
    assert verdicts == sorted(verdicts, reverse=True)


def test_environment_explanation_names_the_winner(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests._support.resolver_cases import SLURM_ENV, TORCHRUN_ENV

    for key, value in {**SLURM_ENV, **TORCHRUN_ENV}.items():
        monkeypatch.setenv(key, value)
    res = resolve(hardware=CPU, preferences=Preferences())
    by_name = {c.name: c for c in res.candidates["cluster_environment"]}
    assert res.cluster_environment.name == "torchelastic"
    assert (
        "also detected; 'torchelastic' ranks above it (priority 50 > 40)"
        in (by_name["slurm"].reasons[0])
    )
    assert by_name["lightning"].accepted  # the default matches too, below
    assert by_name["lsf"].reasons == ("not detected: its launcher did not start this process",)
    text = res.explain()
    assert "cluster environment: torchelastic (detected)" in text


def test_what_would_work_is_offered() -> None:
    with pytest.raises(ResolutionError) as e:
        resolve(precision="transformer-engine", hardware=CPU, preferences=Preferences())
    assert "What would work here with strategy 'single_device': precision='32-true'" in str(e.value)


# -- user preferences -------------------------------------------------------------


def _registry_with(*records: dict[str, Any]) -> Registry:
    from builtin_plugins.precision.mixed import MixedPrecision

    registry = Registry(cache=False)
    for fields in records:
        registry.register(MixedPrecision, kind="precision", **fields)
    return registry


def test_priority_and_specificity_rank_candidates() -> None:
    registry = _registry_with(
        {
            "name": "fast-bf16",
            "provides": ("bf16-mixed",),
            "parameters": {"precision": "bf16-mixed"},
        },
        {
            "name": "big-cpu-bf16",
            "provides": ("bf16-mixed",),
            "constraints": {"cores": ">=8"},
            "parameters": {"precision": "bf16-mixed"},
        },
    )
    res = resolve(
        precision="bf16-mixed", hardware=CPU, registry=registry, preferences=Preferences()
    )
    ranked = [c.name for c in res.candidates["precision"]]
    # all priority 0: the one checking a constraint is more specific; then by name
    assert ranked[:3] == ["big-cpu-bf16", "bf16-mixed", "fast-bf16"]
    small = machine(cores=4)
    res = resolve(
        precision="bf16-mixed", hardware=small, registry=registry, preferences=Preferences()
    )
    assert res.precision.name == "bf16-mixed"
    rejected = {c.name: c for c in res.candidates["precision"]}["big-cpu-bf16"]
    assert rejected.reasons == ("requires cores >=8, found 4 on CPU device 0 (AVX512)",)
    boosted = Preferences(priority={"fast-bf16": 10})
    res = resolve(precision="bf16-mixed", hardware=CPU, registry=registry, preferences=boosted)
    assert res.precision.name == "fast-bf16"


def test_preferences_from_pyproject_and_environment(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[tool.plugin-registry]\npriority = { "fast-bf16" = 10, "acme:x" = 3 }\n'
        'prefer = { "transformer-engine" = "acme-fp8" }\n'
    )
    prefs = Preferences.load(project / "src", environ={})
    assert prefs.priority == {"fast-bf16": 10, "acme:x": 3}
    assert prefs.prefer == {"transformer-engine": "acme-fp8"}
    env = {"PLUGIN_REGISTRY_PRIORITY": "fast-bf16=-5", "PLUGIN_REGISTRY_PREFER": "x=other"}
    prefs = Preferences.load(project, environ=env)
    assert prefs.priority["fast-bf16"] == -5  # the environment wins per entry
    assert prefs.prefer == {"transformer-engine": "acme-fp8", "x": "other"}
    registry = _registry_with(
        {
            "name": "fast-bf16",
            "provides": ("bf16-mixed",),
            "parameters": {"precision": "bf16-mixed"},
        }
    )
    with raises(
        ConfigurationError, "preferences", match=r"priority key 'acme:x' names no installed plugin"
    ):
        resolve(hardware=CPU, registry=registry, preferences=Preferences.load(project, environ={}))
    (project / "pyproject.toml").write_text(
        '[tool.plugin-registry]\npriority = { "fast-bf16" = 10 }'
    )
    res = resolve(
        precision="bf16-mixed",
        hardware=CPU,
        registry=registry,
        preferences=Preferences.load(project, environ={}),
    )
    assert res.precision.name == "fast-bf16"
    (project / "pyproject.toml").write_text('[tool.plugin-registry]\npriority = { a = "high" }\n')
    with raises(ConfigurationError, "preferences", match="priority of 'a' must be an integer"):
        Preferences.load(project, environ={})
    with raises(ConfigurationError, "preferences", match="not name=value"):
        Preferences.load(tmp_path, environ={"PLUGIN_REGISTRY_PRIORITY": "oops"})


# -- locks -------------------------------------------------------------------------


def test_lock_round_trip_and_mismatch(tmp_path: Path) -> None:
    res = resolve(plugins=["bitsandbytes-nf4", "async"], hardware=CPU, preferences=Preferences())
    path = tmp_path / "plugins.lock"
    res.lock().write(path)
    data = json.loads(path.read_text())
    assert data["plugins"]["precision"]["parameters"] == {"mode": "nf4"}
    assert data["libraries"]["bitsandbytes"] == "0.50.2"
    again = resolve(lock=path, hardware=CPU, preferences=Preferences())
    assert again.names() == res.names()
    assert Lock.read(path) == again.lock()
    newer = machine()
    newer = Hardware.from_dict(
        {**newer.to_dict(), "libraries": {**newer.libraries, "bitsandbytes": "0.51.0"}}
    )
    with raises(
        ResolutionError,
        "lock-mismatch",
        match=r"library bitsandbytes: 0\.50\.2 in the lock, 0\.51\.0 here",
    ):
        resolve(lock=path, hardware=newer, preferences=Preferences())
    with raises(ConfigurationError, "lock", match="does not exist"):  # a file problem, a ValueError
        resolve(lock=tmp_path / "missing.lock", hardware=CPU)


def test_settings_beside_a_lock_must_agree_with_it(tmp_path: Path) -> None:
    path = tmp_path / "plugins.lock"
    resolve(precision="bf16-mixed", hardware=H100x2, preferences=Preferences()).lock().write(path)
    again = dict(hardware=H100x2, preferences=Preferences(), lock=path)
    # The settings that wrote the lock, in any spelling, read it back.
    for same in ({}, {"precision": "bf16-mixed"}, {"accelerator": "gpu"}, {"devices": -1},
                 {"strategy": "ddp"}, {"devices": "0,1"}, {"plugins": ["torch"]}):  # fmt: skip
        assert resolve(**same, **again).names()["precision"] == "bf16-mixed", same
    for other, says in [
        ({"strategy": "fsdp"}, "strategy='fsdp' contradicts the lock '.*', which was resolved "
         "for strategy='ddp'; leave it out"),
        ({"devices": 1}, "devices=1 contradicts .* devices=2"),
        ({"precision": "32-true"}, "precision='32-true' contradicts .* precision='bf16-mixed'"),
        ({"precision": "16"}, r"precision='16-mixed' \('16-mixed' here\)|precision='16-mixed' "),
        ({"plugins": ["bitsandbytes-nf4"]}, "the precision plugin 'bitsandbytes-nf4' .* "
         "contradicts the lock .* which names 'bf16-mixed'"),
        ({"plugins": ["async"]}, "the checkpoint_io plugin 'async.*' .* names 'torch'"),
    ]:  # fmt: skip
        with raises(ConfigurationError, "setting", match=says):
            resolve(**other, **again)
    # A Lock object (not a file) is named as "the lock".
    with raises(ConfigurationError, "setting", match="contradicts the lock, which"):
        resolve(strategy="fsdp", hardware=H100x2, lock=Lock.read(path))


def test_resolution_and_lock_settings_are_one_shape(tmp_path: Path) -> None:
    from plugin_registry.resolver import Settings

    res = resolve(precision="16-mixed", devices=-1, hardware=H100x2, preferences=Preferences())
    assert res.settings == Settings(
        precision="16-mixed", accelerator="cuda", strategy="ddp", devices=2, num_nodes=1
    )
    assert res.lock().settings == res.settings
    path = tmp_path / "plugins.lock"
    res.lock().write(path)
    assert Lock.read(path).settings == res.settings
    assert json.loads(path.read_text())["settings"] == res.settings.to_dict()
    assert res.settings.strategy == "ddp"
    data = json.loads(path.read_text())
    data["settings"]["precison"] = "bf16-mixed"
    path.write_text(json.dumps(data))
    with raises(
        ConfigurationError, "lock", match=r"'settings\.precison' is not a setting a lock records"
    ):
        Lock.read(path)
    data["settings"] = {"devices": [0, "1"]}
    path.write_text(json.dumps(data))
    with raises(ConfigurationError, "lock", match=r"'settings\.devices\[1\]' must be an integer"):
        Lock.read(path)


def test_candidates_and_choices_are_built_with_keywords() -> None:
    from plugin_registry.resolver import Candidate, Choice

    with pytest.raises(TypeError):
        Candidate("precision", "x", None, {}, True, ())  # type: ignore[misc]
    cand = Candidate(
        kind="precision", name="x", record=None, parameters={}, accepted=True, reasons=()
    )
    choice = cand.choose("because")
    assert isinstance(choice, Choice)
    assert (choice.name, choice.provider, choice.reason) == ("x", "<instance>", "because")


def test_lock_of_an_instance_cannot_be_reloaded(tmp_path: Path) -> None:
    from builtin_plugins.precision.double import DoublePrecision

    res = resolve(plugins=[DoublePrecision()], hardware=CPU, preferences=Preferences())
    with raises(ResolutionError, "lock-mismatch", match="a lock reloads named plugins only"):
        resolve(lock=res.lock(), hardware=CPU)


# -- this machine ----------------------------------------------------------------------


def test_resolve_on_this_machine_trains() -> None:
    import torch

    from plugin_registry.testing.reference_loop import train

    if torch.cuda.is_available():
        pytest.skip("this check is for a CPU-only machine; the GPU script covers CUDA")
    res = resolve(precision="bf16-mixed")
    assert res.names() == {
        "precision": "bf16-mixed",
        "checkpoint_io": "torch",
        "cluster_environment": "lightning",
    }
    assert res.hardware.torch == torch.__version__.split("+")[0] or res.hardware.torch == (
        torch.__version__
    )
    precision, _, _ = res.load()
    result = train(precision)
    assert sum(result.losses[-10:]) / 10 < 0.15
    assert result.dtypes["activations"] == ["bfloat16"]
    assert result.dtypes["params"] == ["float32"]


def test_cuda_request_on_this_machine_says_why() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is present")
    with pytest.raises(ResolutionError, match="no CUDA device was found"):
        resolve(accelerator="cuda")


# -- the command line ------------------------------------------------------------------


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plugin_registry.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_cli_resolve_with_a_hardware_file(tmp_path: Path) -> None:
    hw = tmp_path / "h100.json"
    machine(cuda=8).dump(hw)
    out = _cli("resolve", "--precision", "transformer-engine", "--hardware", str(hw))
    assert out.returncode == 0, out.stderr
    assert "precision: transformer-engine (only candidate accepted)" in out.stdout
    assert "8 x CUDA (NVIDIA H100 80GB HBM3, 9.0)" in out.stdout
    out = _cli(
        "resolve",
        "--precision",
        "bf16-mixed",
        "--strategy",
        "fsdp",
        "--json",
        "--hardware",
        str(hw),
        "--write-lock",
        str(tmp_path / "a.lock"),
    )
    data = json.loads(out.stdout)
    assert data["chosen"]["precision"]["name"] == "fsdp-bf16-mixed"
    assert (tmp_path / "a.lock").exists()
    out = _cli("resolve", "--lock", str(tmp_path / "a.lock"), "--hardware", str(hw), "--json")
    assert json.loads(out.stdout)["chosen"]["precision"]["name"] == "fsdp-bf16-mixed"


def test_cli_resolve_error_exits_2() -> None:
    out = _cli("resolve", "--precision", "transformer-engine", "--accelerator", "cpu")
    assert out.returncode == 2
    assert "needs CUDA with compute_capability >=8.9, found CPU" in out.stderr


def test_cli_hardware_json_round_trips(tmp_path: Path) -> None:
    out = _cli("hardware", "--json")
    assert out.returncode == 0, out.stderr
    hw = Hardware.from_dict(json.loads(out.stdout))
    assert hw.cpu_cores >= 1
    assert hw.version("torch") == importlib.metadata.version("torch")
    assert hw.version("transformer_engine") is None  # not installable here
    out = _cli("hardware")
    assert "CPU cores" in out.stdout


# -- every rank agrees -------------------------------------------------------------------


def _two_ranks(tmp_path: Path, rank1_bitsandbytes: str | None) -> list[dict[str, Any]]:
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    worker = str(Path(__file__).with_name("workers") / "ranks_worker.py")
    procs = []
    for rank in (0, 1):
        extra = [rank1_bitsandbytes] if rank == 1 and rank1_bitsandbytes else []
        procs.append(
            subprocess.Popen(
                [sys.executable, worker, str(rank), str(tmp_path), *extra],
                env=env,
                cwd=Path(__file__).parent.parent,
            )
        )
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_a_rank_that_is_gone_is_named_by_the_others(tmp_path: Path) -> None:
    """The ranks left reported gloo's "Connection closed by peer", naming no rank."""
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
        "WORLD": "3",
        "DIE_RANK": "2",
    }
    worker = str(Path(__file__).with_name("workers") / "ranks_worker.py")
    procs = [
        subprocess.Popen([sys.executable, worker, str(rank), str(tmp_path)], env=env, cwd=REPO)
        for rank in range(3)
    ]
    assert [proc.wait(timeout=180) for proc in procs] == [0, 0, 7]
    for rank in (0, 1):
        error = json.loads((tmp_path / f"rank{rank}.json").read_text())["error"]
        assert "could not compare their plugins" in error, error
        assert f"failed on rank {rank} on {socket.gethostname()}" in error
        assert "rank 2 never reached resolve_on_all_ranks" in error, error


@pytest.mark.needs("bitsandbytes")
def test_ranks_that_agree_get_the_same_plugins(tmp_path: Path) -> None:
    results = _two_ranks(tmp_path, None)
    assert results[0] == results[1]
    assert results[0]["names"]["precision"] == "bitsandbytes-nf4"


@pytest.mark.needs("bitsandbytes")
def test_a_rank_with_another_library_version_fails_every_rank(tmp_path: Path) -> None:
    import importlib.metadata

    mine = importlib.metadata.version("bitsandbytes")
    host = socket.gethostname()
    results = _two_ranks(tmp_path, "0.45.0")
    for result in results:
        assert (
            f"rank 1 on {host} differs from rank 0 on {host}: library bitsandbytes: "
            f"{mine} on {host} (rank 0), 0.45.0 on {host} (rank 1)" in result["error"]
        )


def test_a_rank_missing_the_library_fails_every_rank(tmp_path: Path) -> None:
    results = _two_ranks(tmp_path, "0.1.0")
    for result in results:
        assert f"rank 1 on {socket.gethostname()} could not resolve" in result["error"]
        assert (
            "bitsandbytes 0.1.0 is installed but bitsandbytes>=0.45 is required"
            in (result["error"])
        )


def test_an_environment_whose_detect_raises_is_passed_over() -> None:
    from builtin_plugins.environments.lightning import LightningEnvironment
    from plugin_registry.resolver.detection import detect_environment

    class Exploding(LightningEnvironment):
        @staticmethod
        def detect() -> bool:
            raise RuntimeError("scheduler socket gone")

    registry = Registry(cache=False)
    registry.register(Exploding, kind="cluster_environment", name="exploding", priority=90)
    with pytest.warns(pr.PluginWarning, match="scheduler socket gone"):
        assert detect_environment(registry).name == "lightning"
    res = resolve(hardware=CPU, registry=registry, preferences=Preferences())
    assert res.cluster_environment.name == "lightning"
    rejected = {c.name: c for c in res.candidates["cluster_environment"]}["exploding"]
    assert rejected.reasons == ("its detect() failed: RuntimeError: scheduler socket gone",)


def test_disagreements_name_each_host_and_group_its_ranks() -> None:
    import copy

    from plugin_registry.resolver.agreement import _disagreements

    lock = resolve(preferences=Preferences()).lock().to_dict()
    other = copy.deepcopy(lock)
    other["libraries"]["torch"] = "2.0.0"
    gathered = (
        [{"host": "node1", "lock": lock}] * 8
        + [{"host": "node2", "lock": other}] * 8
        + [{"host": "node3", "lock": lock}] * 8  # agrees: not reported
        + [{"host": "node4", "lock": other}]
    )
    here = lock["libraries"]["torch"]
    assert _disagreements(gathered) == [
        f"ranks 8-15 on node2 differ from rank 0 on node1: library torch: {here} on node1 "
        "(rank 0), 2.0.0 on node2 (ranks 8-15)",
        f"rank 24 on node4 differs from rank 0 on node1: library torch: {here} on node1 "
        "(rank 0), 2.0.0 on node4 (rank 24)",
    ]
    failed = [*gathered[:2], {"host": "node2", "error": "PluginNotFoundError: no 'x'"}] * 2
    assert _disagreements(failed) == [
        "ranks 2, 5 on node2 could not resolve: PluginNotFoundError: no 'x'"
    ]
    assert _disagreements([{"host": "a", "lock": lock}, {"host": "b", "lock": lock}]) == []


@pytest.mark.parametrize(
    ("argument", "value", "error", "message"),
    [
        ("lock", "/proc/self/mem", ConfigurationError, r"cannot read lock file '/proc/self/mem'"),
        ("hardware", "/proc/self/mem", ConfigurationError, "cannot read"),
        ("preferences", "x", TypeError, r"preferences must be a Preferences .* got str"),
        ("registry", "x", TypeError, r"registry must be a Registry .* got str"),
        ("lock", 5, TypeError, r"lock must be a Lock or the path of its file, got int"),
        ("hardware", 5, TypeError, r"hardware must be a Hardware record or the path"),
    ],
)
def test_a_wrong_resolve_argument_is_an_error_naming_it(
    argument: str, value: object, error: type[Exception], message: str
) -> None:
    """They escaped as a raw OSError (EIO) and AttributeError ('str' has no 'prefer')."""
    with pytest.raises(error, match=message):
        pr.resolve(precision="bf16-mixed", **{argument: value})


def test_the_detected_environments_reason_counts_those_above_it_in_words() -> None:
    from builtin_plugins.environments.lightning import LightningEnvironment

    class Never(LightningEnvironment):
        @staticmethod
        def detect() -> bool:
            return False

    class Always(LightningEnvironment):
        @staticmethod
        def detect() -> bool:
            return True

    registry = Registry(cache=False)
    registry.register(Never, kind="cluster_environment", name="never-a", priority=10_002)
    registry.register(Always, kind="cluster_environment", name="always", priority=10_000)
    res = resolve(hardware=CPU, registry=registry, preferences=Preferences())
    winner = {c.name: c for c in res.candidates["cluster_environment"]}["always"]
    assert winner.reasons == ("detected (priority 10000); the one ranked above it was not",)
    registry.register(Never, kind="cluster_environment", name="never-b", priority=10_001)
    res = resolve(hardware=CPU, registry=registry, preferences=Preferences())
    winner = {c.name: c for c in res.candidates["cluster_environment"]}["always"]
    assert winner.reasons == ("detected (priority 10000); the 2 ranked above it were not",)


@pytest.mark.parametrize("key", ["async", "plugin-registry:async-torch", "Plugin_Registry:async"])
def test_a_priority_key_reads_as_a_lookup_does(key: str) -> None:
    """An alias and a qualified name change the ranking as the name they stand for."""
    prefs = Preferences.load(".", environ={"PLUGIN_REGISTRY_PRIORITY": f"{key}=1000"})
    res = resolve(hardware=CPU, preferences=prefs)
    assert res.checkpoint_io.name == "async-torch"
    (chosen,) = [c for c in res.candidates["checkpoint_io"] if c.name == "async-torch"]
    assert chosen.priority == 1000


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (
            "PLUGIN_REGISTRY_PRIORITY=async-trch=5",
            "priority key 'async-trch' names no installed plugin; did you mean 'async-torch'",
        ),
        (
            "PLUGIN_REGISTRY_PRIORITY=acme-plugins:torch=5",
            "priority key 'acme-plugins:torch' names no installed plugin",
        ),
        (
            "PLUGIN_REGISTRY_PREFER=torch=acme-plugins",
            "prefer 'torch' from 'acme-plugins', which "
            "does not provide it; it is provided by plugin-registry",
        ),
        (
            "PLUGIN_REGISTRY_PREFER=tourch=plugin-registry",
            "prefer key 'tourch' names no installed plugin; did you mean 'torch'",
        ),
    ],
)
def test_a_preference_that_cannot_hold_is_an_error_naming_it(setting: str, message: str) -> None:
    variable, _, value = setting.partition("=")
    prefs = Preferences.load(".", environ={variable: value})
    with raises(ConfigurationError, "preferences") as info:
        resolve(hardware=CPU, preferences=prefs)
    assert str(info.value).startswith(f"{variable}: ") and message in str(info.value)


def test_a_priority_for_a_parametrised_record_ranks_its_default_first() -> None:
    from plugin_registry.kinds.checkpoint_io import CheckpointIO

    class Zstd(CheckpointIO):
        def __init__(self, level: str = "3") -> None:
            self.level = level

        def save_checkpoint(self, checkpoint: Any, path: Any, storage_options: Any = None) -> None:
            raise NotImplementedError

        def load_checkpoint(
            self, path: Any, map_location: Any = None, weights_only: Any = None
        ) -> Any:
            raise NotImplementedError

        def remove_checkpoint(self, path: Any) -> None:
            raise NotImplementedError

    registry = Registry(cache=False)
    registry.register(
        Zstd,
        kind="checkpoint_io",
        name="zstd-{level}",
        name_parameters={"level": [str(n) for n in range(1, 23)]},
        parameters={"level": "3"},
    )
    for key in ("zstd-{level}", "<in-process>:zstd-{level}"):
        prefs = Preferences(priority={key: 1000})
        res = resolve(hardware=CPU, registry=registry, preferences=prefs)
        assert res.checkpoint_io.name == "zstd-3"  # the default, not 'zstd-1' nor 'zstd-10'
        ranked = [c.name for c in res.candidates["checkpoint_io"] if c.name.startswith("zstd")]
        assert ranked[:4] == ["zstd-3", "zstd-1", "zstd-2", "zstd-4"]
    res = resolve(
        hardware=CPU, registry=registry, preferences=Preferences(priority={"zstd-19": 1000})
    )
    assert res.checkpoint_io.name == "zstd-19"
