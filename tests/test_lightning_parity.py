"""Our cluster environments against Lightning's, method by method, on the same variables.

For every environment both ship, start from what its launcher sets, then take each variable
away and spoil each number: every method (and the constructor) must return what Lightning's
returns, or raise an exception that Lightning's ``except`` clauses catch (an instance of the
type Lightning raises). The differences docs/lightning.md lists are the only ones allowed.
"""

from __future__ import annotations

import importlib
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("lightning", reason="lightning is not installed (the [lightning] extra)")

from lightning.fabric.plugins import environments as lightning_environments

OURS = {
    "SLURMEnvironment": "builtin_plugins.environments.slurm",
    "LSFEnvironment": "builtin_plugins.environments.lsf",
    "TorchElasticEnvironment": "builtin_plugins.environments.torchelastic",
    "KubeflowEnvironment": "builtin_plugins.environments.kubeflow",
    "LightningEnvironment": "builtin_plugins.environments.lightning",
}

#: What each launcher sets (the LSF rank file is written per test).
LAUNCHED = {
    "SLURMEnvironment": {
        "SLURM_NTASKS": "4",
        "SLURM_NTASKS_PER_NODE": "2",
        "SLURM_JOB_ID": "1234",
        "SLURM_PROCID": "1",
        "SLURM_LOCALID": "1",
        "SLURM_NODEID": "0",
        "SLURM_NODELIST": "node[1-2]",
        "SLURM_JOB_NAME": "train",
    },
    "LSFEnvironment": {
        "LSB_JOBID": "1234",
        "LSB_DJOB_RANKFILE": "<rank file>",
        "JSM_NAMESPACE_SIZE": "2",
        "JSM_NAMESPACE_RANK": "0",
        "JSM_NAMESPACE_LOCAL_RANK": "0",
    },
    "TorchElasticEnvironment": {
        "WORLD_SIZE": "4",
        "RANK": "1",
        "LOCAL_RANK": "1",
        "GROUP_RANK": "0",
        "MASTER_ADDR": "10.0.0.1",
        "MASTER_PORT": "29500",
        "TORCHELASTIC_RUN_ID": "run",
    },
    "KubeflowEnvironment": {
        "WORLD_SIZE": "4",
        "RANK": "1",
        "MASTER_ADDR": "10.0.0.1",
        "MASTER_PORT": "29500",
    },
    "LightningEnvironment": {
        "LOCAL_RANK": "1",
        "NODE_RANK": "0",
        "MASTER_ADDR": "10.0.0.1",
        "MASTER_PORT": "29500",
        "WORLD_SIZE": "4",
        "RANK": "1",
    },
}
TEXT = {
    "SLURM_NODELIST",
    "SLURM_JOB_NAME",
    "LSB_DJOB_RANKFILE",
    "MASTER_ADDR",
    "TORCHELASTIC_RUN_ID",
}
METHODS = (
    "main_address",
    "main_port",
    "world_size",
    "global_rank",
    "local_rank",
    "node_rank",
    "creates_processes_externally",
    "detect",
)

#: The differences docs/lightning.md ("Differences from Lightning") lists, by
#: (class, variables, method); None for every method.
DOCUMENTED: dict[tuple[str, str], Callable[[str], bool]] = {
    # --ntasks without --ntasks-per-node is accepted when SLURM spread the tasks evenly.
    ("SLURMEnvironment", "-SLURM_NTASKS_PER_NODE"): lambda method: True,
    # Lightning reads SLURM_NTASKS when built; here world_size() reads it (and raises there).
    ("SLURMEnvironment", "SLURM_NTASKS=x"): lambda method: method != "world_size",
}
#: Kubeflow is never auto-detected: detect() answers False where Lightning's raises.
KUBEFLOW_DETECT = ("KubeflowEnvironment", "detect")

CASES = [
    (name, label, env)
    for name, base in LAUNCHED.items()
    for label, env in [
        ("launched", dict(base)),
        *((f"-{k}", {n: v for n, v in base.items() if n != k}) for k in base),
        *((f"{k}=x", {**base, k: "x"}) for k in base if k not in TEXT),
        *((f"{k}=-1", {**base, k: "-1"}) for k in base if k not in TEXT),
    ]
]


def _outcome(cls: type, method: str) -> tuple[str, Any]:
    try:
        env = cls()
    except Exception as exc:
        return "constructor raises", type(exc)
    try:
        value = getattr(env, method)
        return "returns", value() if callable(value) else value
    except Exception as exc:
        return "raises", type(exc)


@pytest.mark.parametrize(("name", "label", "env"), CASES, ids=[f"{c[0]}{c[1]}" for c in CASES])
def test_each_method_returns_or_raises_as_lightnings(
    name: str, label: str, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rank_file = tmp_path / "rankfile"
    rank_file.write_text(f"launch\n{socket.gethostname()}\n{socket.gethostname()}\n")
    for variable in {v for base in LAUNCHED.values() for v in base}:
        monkeypatch.delenv(variable, raising=False)
    for variable, value in env.items():
        monkeypatch.setenv(variable, str(rank_file) if value == "<rank file>" else value)
    theirs = getattr(lightning_environments, name)
    ours = getattr(importlib.import_module(OURS[name]), name)
    differ = []
    for method in METHODS:
        if DOCUMENTED.get((name, label), lambda m: False)(method) or (name, method) == (
            KUBEFLOW_DETECT
        ):
            continue
        expected, got = _outcome(theirs, method), _outcome(ours, method)
        if expected[0] == "returns" and label.endswith("=-1"):
            # A negative rank, size or port is returned by Lightning as given; here it is
            # an InvalidVariableError (a ValueError) naming the variable (documented).
            same = got == expected or (got[0] != "returns" and issubclass(got[1], ValueError))
        elif expected[0] == "returns":
            free_port = method == "main_port" and "MASTER_PORT" not in os.environ
            if free_port and name == "LightningEnvironment":  # found anew by each
                same = got[0] == "returns" and isinstance(got[1], int)
            else:
                same = got == expected
        else:  # ours may raise earlier or later, but a type Lightning's callers catch
            same = got[0] != "returns" and issubclass(got[1], expected[1])
        if not same:
            differ.append(f"{method}: Lightning {expected}, here {got}")
    assert not differ, "\n".join(differ)


@pytest.mark.parametrize("name", ["torch", "bf16-mixed", "slurm"])
def test_lightnings_own_classes_refuse_a_bare_registry_plugin_and_take_it_wrapped(
    name: str,
) -> None:
    """As docs/lightning.md says: Lightning's connector knows only its own base classes."""
    import lightning as L

    import plugin_registry as pr
    from plugin_registry.lightning import registry_plugins

    plugin = pr.load(name)
    with pytest.raises(Exception, match="Found invalid type for plugin"):
        L.Trainer(accelerator="cpu", plugins=[plugin], logger=False)
    with pytest.raises(TypeError, match="Found invalid type for plugin"):
        L.Fabric(accelerator="cpu", plugins=[plugin])
    if name != "slurm":  # a SLURM environment outside a SLURM job is refused for that reason
        L.Fabric(accelerator="cpu", plugins=registry_plugins([plugin]))


@pytest.mark.parametrize("value", ["32-true", "16-true", "bf16-true", "16-mixed", "bf16-mixed"])
def test_fsdp_mixed_precision_config_warns_as_lightnings(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import warnings

    from lightning.fabric.plugins.precision.fsdp import FSDPPrecision as LightningFSDPPrecision

    import plugin_registry as pr
    from plugin_registry.lightning import registry_plugins

    for variable in ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK", "LOCAL_RANK"):
        monkeypatch.delenv(variable, raising=False)

    def warned(make: Callable[[], Any]) -> list[str]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            config = make().mixed_precision_config
        assert config.param_dtype is not None
        return [str(w.message) for w in caught if "lower precision" in str(w.message)]

    theirs = warned(lambda: LightningFSDPPrecision(value))  # type: ignore[arg-type]
    ours = warned(lambda: pr.load(f"fsdp-{value}"))
    adapted = warned(lambda: registry_plugins([f"fsdp-{value}"])[0])
    lower = value in ("16-true", "bf16-true")
    assert bool(theirs) == bool(ours) == bool(adapted) == lower
    monkeypatch.setenv("RANK", "1")  # rank 0 only, as Lightning's rank_zero_warn
    assert warned(lambda: pr.load(f"fsdp-{value}")) == []


def test_the_cluster_environment_in_use_is_one_call_away_on_one_device_and_under_ddp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import lightning as L

    from plugin_registry.lightning import (
        Fabric,
        RegistryEnvironment,
        Trainer,
        cluster_environment,
        registry_plugins,
    )

    for variable in ("SLURM_NTASKS", "SLURM_JOB_NAME", "TORCHELASTIC_RUN_ID", "LSB_JOBID"):
        monkeypatch.delenv(variable, raising=False)
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, plugins=["lightning"])
    assert not hasattr(trainer.strategy, "cluster_environment")  # why this exists
    assert isinstance(trainer.cluster_environment, RegistryEnvironment)
    assert trainer.cluster_environment.plugin.__class__.__name__ == "LightningEnvironment"
    fabric = Fabric(accelerator="cpu", devices=1, plugins=["lightning"])
    assert isinstance(fabric.cluster_environment, RegistryEnvironment)
    ddp = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        logger=False,
        plugins=registry_plugins(["lightning"]),
    )
    assert cluster_environment(ddp) is ddp.strategy.cluster_environment
    assert isinstance(cluster_environment(ddp), RegistryEnvironment)
    plain = L.Fabric(accelerator="cpu", devices=1)
    assert type(cluster_environment(plain)).__name__ == "LightningEnvironment"  # Lightning's own
    with pytest.raises(TypeError, match="takes a Lightning Trainer or Fabric"):
        cluster_environment(object())


# -- checkpoint IO, where Lightning's own checkpoint tests look ---------------------


def _boring_model() -> Any:
    from lightning.pytorch.demos.boring_classes import BoringModel

    return BoringModel()


def _trainer(tmp_path: Path, plugin: Any, **kwargs: Any) -> Any:
    from lightning.pytorch.callbacks import ModelCheckpoint

    from plugin_registry.lightning import Trainer

    return Trainer(
        default_root_dir=tmp_path,
        accelerator="cpu",
        plugins=[plugin],
        callbacks=ModelCheckpoint(dirpath=tmp_path, **kwargs),
        limit_train_batches=1,
        limit_val_batches=0,
        limit_test_batches=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
    )


def test_the_checkpoint_adapter_passes_lightnings_calls_on_as_they_were_made(
    tmp_path: Path,
) -> None:
    """A plugin watched by a mock sees the very calls Lightning makes to its own IO:
    ``load_checkpoint(path, weights_only=None)``, not arguments the adapter added."""
    from unittest.mock import MagicMock

    from builtin_plugins.checkpoint_io.torch_io import TorchCheckpointIO

    watched = MagicMock(wraps=TorchCheckpointIO(), spec=TorchCheckpointIO)
    trainer = _trainer(tmp_path, watched, save_last=True)
    trainer.fit_loop.max_epochs = 2
    trainer.fit(_boring_model())
    assert {p.name for p in tmp_path.glob("*.ckpt")} == {"epoch=1-step=2.ckpt", "last.ckpt"}
    assert watched.save_checkpoint.call_count == 4
    assert watched.remove_checkpoint.call_count == 1
    trainer.test(_boring_model(), ckpt_path=str(tmp_path / "last.ckpt"), verbose=False)
    watched.load_checkpoint.assert_called_once_with(str(tmp_path / "last.ckpt"), weights_only=None)


def test_an_async_plugin_shows_lightning_the_attributes_lightnings_has(tmp_path: Path) -> None:
    from unittest.mock import Mock

    from builtin_plugins.checkpoint_io.async_io import AsyncCheckpointIO
    from builtin_plugins.checkpoint_io.torch_io import TorchCheckpointIO

    nested = AsyncCheckpointIO(AsyncCheckpointIO(TorchCheckpointIO()))
    assert nested._base_checkpoint_io_configured is True
    assert nested.checkpoint_io._base_checkpoint_io_configured is True  # type: ignore[attr-defined]
    plugin = AsyncCheckpointIO()
    plugin.save_checkpoint = Mock(wraps=plugin.save_checkpoint)  # type: ignore[method-assign]
    trainer = _trainer(tmp_path, plugin, save_top_k=2, monitor="step", mode="max")
    trainer.fit_loop.max_epochs = 3
    base = trainer.strategy.checkpoint_io.checkpoint_io  # through the adapter, as Lightning's
    assert isinstance(base, TorchCheckpointIO)
    base.save_checkpoint = Mock(wraps=base.save_checkpoint)
    base.remove_checkpoint = Mock(wraps=base.remove_checkpoint)
    trainer.fit(_boring_model())
    plugin.wait()
    assert plugin.save_checkpoint.call_count == 3
    assert base.save_checkpoint.call_count == 3
    assert base.remove_checkpoint.call_count == 1
    plugin.teardown()
