"""Names straight into Lightning: our Fabric, Trainer and LightningCLI, and every strategy's
precision adapter, on real Lightning on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("lightning", reason="lightning is not installed (the [lightning] extra)")

import lightning as L

import plugin_registry as pr
from plugin_registry.errors import PluginNotFoundError
from plugin_registry.lightning import (
    Fabric,
    RegistryCheckpointIO,
    RegistryDeepSpeedPrecision,
    RegistryFSDPPrecision,
    RegistryPrecision,
    RegistryXLAPrecision,
    Trainer,
    registry_plugins,
)
from plugin_registry.testing.reference_loop import make_data, make_model
from tests._support.support import free_port, skip_unless_installed

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("no_launcher_env")


class Regressor(L.LightningModule):
    """Records the Trainer hooks it sees and the gradient size each hook finds."""

    def __init__(self, fused: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = make_model()
        self.fused = fused
        self.calls: list[str] = []
        self.grad_max: list[float] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x).float(), y)

    def on_before_backward(self, loss: torch.Tensor) -> None:
        self.calls.append("before_backward")

    def on_after_backward(self) -> None:
        self.calls.append("after_backward")

    def on_before_optimizer_step(self, optimizer: Any) -> None:
        self.calls.append("before_optimizer_step")
        grads = [p.grad.abs().max().item() for p in self.parameters() if p.grad is not None]
        self.grad_max.append(max(grads, default=0.0))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=1e-2, fused=self.fused)


def _loader() -> Any:
    x, y = make_data()
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)


def _quiet(**kw: Any) -> dict[str, Any]:
    return {
        "accelerator": "cpu",
        "devices": 1,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "logger": False,
        "enable_checkpointing": False,
        **kw,
    }


# -- Fabric and the Trainer take names ---------------------------------------------------


def test_fabric_takes_names_records_instances_and_lightnings_own(tmp_path: Path) -> None:
    from lightning.fabric.plugins.environments import LightningEnvironment

    theirs = LightningEnvironment()
    fabric = Fabric(
        accelerator="cpu",
        devices=1,
        plugins=["bf16-mixed", pr.get("torch"), theirs],
    )
    precision = fabric.strategy.precision
    assert isinstance(precision, RegistryPrecision)
    assert precision.plugin.precision == "bf16-mixed"
    assert isinstance(fabric.strategy.checkpoint_io, RegistryCheckpointIO)
    assert fabric.resolution is None
    torch.manual_seed(0)
    model = make_model()
    model, _ = fabric.setup(model, torch.optim.Adam(model.parameters()))
    x, y = make_data()
    seen: list[torch.dtype] = []
    model.module[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    loss = torch.nn.functional.mse_loss(model(x), y)
    fabric.backward(loss)
    assert seen == [torch.bfloat16]
    fabric.save(tmp_path / "m.ckpt", {"model": model})
    assert pr.load("torch").load_checkpoint(tmp_path / "m.ckpt")["model"].keys()


def test_trainer_takes_names_and_runs_its_hooks_around_ours() -> None:
    model = Regressor()
    trainer = Trainer(max_steps=3, plugins=["16-mixed", "torch"], **_quiet())
    precision = trainer.strategy.precision_plugin
    assert isinstance(precision, RegistryPrecision)
    assert precision.plugin.scaler is not None
    trainer.fit(model, _loader())
    assert trainer.global_step == 3
    assert model.calls == ["before_backward", "after_backward", "before_optimizer_step"] * 3
    # The hook sees true gradients: the scaler (2**16 to start) unscaled them first.
    assert max(model.grad_max) < 100


def test_the_trainer_steps_a_fused_optimizer_under_16_mixed_and_refuses_to_clip_it() -> None:
    model = Regressor(fused=True)
    trainer = Trainer(max_steps=3, plugins=["16-mixed"], **_quiet())
    trainer.fit(model, _loader())
    assert trainer.global_step == 3
    clipping = Trainer(max_steps=3, plugins=["16-mixed"], gradient_clip_val=1.0, **_quiet())
    with pytest.raises(NotImplementedError, match=r"fused=True.*fused=False"):
        clipping.fit(Regressor(fused=True), _loader())


def test_lightnings_own_trainer_takes_the_same_adapters_as_fabric() -> None:
    """One registry_plugins() call serves both."""
    plugins = registry_plugins(["bf16-mixed"])
    trainer = L.Trainer(max_steps=2, plugins=plugins, **_quiet())
    trainer.fit(Regressor(), _loader())
    assert trainer.global_step == 2
    fabric = L.Fabric(accelerator="cpu", devices=1, plugins=registry_plugins(["bf16-mixed"]))
    assert type(fabric.strategy.precision) is type(trainer.strategy.precision_plugin)
    with pytest.raises(TypeError, match="trainer"):
        registry_plugins(["bf16-mixed"], trainer=True)  # type: ignore[call-arg]


def test_precision_auto_is_the_resolvers_choice_and_explains_itself() -> None:
    trainer = Trainer(precision="auto", plugins=["torch"], **_quiet())
    res = trainer.resolution
    assert res is not None
    adapter = trainer.strategy.precision_plugin
    assert isinstance(adapter, RegistryPrecision)
    assert res.precision.name == adapter.plugin.precision
    assert res.checkpoint_io.name == "torch" and res.checkpoint_io.reason == "explicitly requested"
    assert f"precision: {res.precision.name}" in res.explain()
    fabric = Fabric(accelerator="cpu", devices=1, precision="auto", strategy="ddp")
    assert fabric.resolution is not None
    assert fabric.resolution.settings.strategy == "ddp"
    # a precision plugin named beside "auto" is the one used
    named = Trainer(precision="auto", plugins=["bf16-mixed"], **_quiet())
    assert named.strategy.precision_plugin.plugin.precision == "bf16-mixed"
    assert named.resolution is not None and named.resolution.precision.name == "bf16-mixed"


def test_precision_may_name_a_registry_plugin_and_a_misspelling_gets_did_you_mean() -> None:
    skip_unless_installed("bitsandbytes")
    trainer = Trainer(precision="bitsandbytes-int8", **_quiet())
    assert trainer.strategy.precision_plugin.plugin.mode == "int8"
    with pytest.raises(PluginNotFoundError, match="Did you mean 'bitsandbytes-nf4'"):
        Trainer(precision="bitsandbytes-nf5", **_quiet())
    with pytest.raises(PluginNotFoundError, match="Did you mean 'slurm'"):
        Fabric(accelerator="cpu", plugins=["slrum"])
    # Lightning's own values stay Lightning's
    lightnings = Trainer(precision="bf16-mixed", **_quiet())
    assert type(lightnings.strategy.precision_plugin).__module__.startswith("lightning.")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["trainer", "fabric"])
def test_ddp_with_two_processes_fits_and_resumes(mode: str, tmp_path: Path) -> None:
    """Lightning's own launcher starts the second process (this script, run again)."""
    worker = REPO / "tests" / "workers" / "lightning_ddp_worker.py"
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def run(steps: int, *ckpt: str) -> dict[str, Any]:
        proc = subprocess.run(
            [sys.executable, str(worker), mode, str(tmp_path), str(steps), *ckpt],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        result: dict[str, Any] = json.loads((tmp_path / f"result-{mode}-{steps}.json").read_text())
        return result

    first = run(6)
    assert first == {
        "world_size": 2,
        "precision": "RegistryPrecision",
        "checkpoint_io": "TorchCheckpointIO",
        "global_step": 6,
        "adam_steps": [6],
    }
    ckpt = tmp_path / ("ckpt/last.ckpt" if mode == "trainer" else "fabric.ckpt")
    resumed = run(9, str(ckpt))
    # Adam's own step count went on from 6: the optimizer state came back through our IO
    assert (resumed["global_step"], resumed["adam_steps"]) == (9, [9])


# -- LightningCLI ------------------------------------------------------------------------

CLI_SCRIPT = """
import sys, json, torch, lightning as L
from lightning.pytorch.cli import LightningCLI
from plugin_registry.lightning import Trainer
from plugin_registry.testing.reference_loop import make_data, make_model

class Regressor(L.LightningModule):
    def __init__(self, lr: float = 1e-2) -> None:
        super().__init__()
        self.lr = lr
        self.net = make_model()

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x).float(), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)

    def train_dataloader(self):
        x, y = make_data()
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)

cli = LightningCLI(Regressor, trainer_class=Trainer, save_config_callback=None)
t = cli.trainer
print(json.dumps({
    "precision": [type(t.strategy.precision_plugin).__name__,
                  type(t.strategy.precision_plugin.plugin).__name__],
    "checkpoint_io": type(t.strategy.checkpoint_io.plugin).__name__,
    "global_step": t.global_step,
    "resolved": t.resolution.precision.name if t.resolution else None,
}))
"""


def _cli(tmp_path: Path, config: str) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("jsonargparse", reason="LightningCLI needs jsonargparse[signatures]")
    (tmp_path / "train.py").write_text(CLI_SCRIPT)
    (tmp_path / "config.yaml").write_text(config)
    return subprocess.run(
        [sys.executable, "train.py", "fit", "--config", "config.yaml"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.mark.slow
def test_lightning_cli_reads_plugin_names_and_precision_auto(tmp_path: Path) -> None:
    proc = _cli(
        tmp_path,
        "trainer:\n  accelerator: cpu\n  devices: 1\n  max_steps: 4\n  precision: auto\n"
        "  plugins: [torch, lightning]\n  logger: false\n  enable_progress_bar: false\n",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["precision"][0] == "RegistryPrecision"
    assert out["checkpoint_io"] == "TorchCheckpointIO"
    assert out["global_step"] == 4
    assert out["resolved"] is not None


@pytest.mark.slow
def test_lightning_cli_names_a_misspelt_plugin_with_did_you_mean(tmp_path: Path) -> None:
    proc = _cli(
        tmp_path, "trainer:\n  accelerator: cpu\n  max_steps: 1\n  plugins: [bitsandbytes-nf5]\n"
    )
    assert proc.returncode != 0
    assert (
        "no plugin named 'bitsandbytes-nf5': 'bitsandbytes-{mode}' takes mode one of 'nf4', "
        "'nf4-dq', 'fp4', 'fp4-dq', 'int8' or 'int8-training', not 'nf5'. Did you mean "
        "'bitsandbytes-nf4'"
    ) in proc.stderr


# -- every strategy: Lightning's FSDP, DeepSpeed and XLA take our adapters -----------------


@pytest.mark.needs("deepspeed")
def test_each_strategy_family_gets_an_adapter_of_its_own_class() -> None:
    from lightning.fabric.plugins.precision import DeepSpeedPrecision as FabricDS
    from lightning.fabric.plugins.precision import FSDPPrecision as FabricFSDP
    from lightning.fabric.plugins.precision import XLAPrecision as FabricXLA
    from lightning.pytorch.plugins.precision import DeepSpeedPrecision as TrainerDS
    from lightning.pytorch.plugins.precision import FSDPPrecision as TrainerFSDP
    from lightning.pytorch.plugins.precision import XLAPrecision as TrainerXLA

    fsdp = registry_plugins(["fsdp-bf16-mixed"], strategy="fsdp")[0]
    assert isinstance(fsdp, RegistryFSDPPrecision)
    assert isinstance(fsdp, (FabricFSDP)) and isinstance(fsdp, TrainerFSDP)
    ds = registry_plugins(["deepspeed-bf16-mixed"], strategy="deepspeed_stage_3")[0]
    assert isinstance(ds, RegistryDeepSpeedPrecision)
    assert isinstance(ds, FabricDS) and isinstance(ds, TrainerDS)
    # XLA's plugin needs torch_xla to be built; the adapter class is checked here and
    # run in the torch_xla session.
    assert issubclass(RegistryXLAPrecision, FabricXLA) and issubclass(
        RegistryXLAPrecision, TrainerXLA
    )
    # a Strategy object works like its name
    from lightning.fabric.strategies import DDPStrategy, FSDPStrategy

    assert isinstance(
        registry_plugins(["fsdp-bf16-mixed"], strategy=FSDPStrategy())[0], RegistryFSDPPrecision
    )
    assert type(registry_plugins(["bf16-mixed"], strategy=DDPStrategy())[0]) is RegistryPrecision
    # without a strategy, a record made for one picks its family's adapter
    assert isinstance(registry_plugins(["fsdp-bf16-mixed"])[0], RegistryFSDPPrecision)
    assert isinstance(registry_plugins([pr.load("fsdp-16-mixed")])[0], RegistryFSDPPrecision)


@pytest.mark.needs("deepspeed")
def test_a_precision_plugin_not_made_for_the_strategy_is_refused_with_the_right_name() -> None:
    with pytest.raises(
        ValueError, match=r"fsdp strategy .* 'bf16-mixed' is not made for it: use 'fsdp-bf16-mixed'"
    ):
        registry_plugins(["bf16-mixed"], strategy="fsdp")
    with pytest.raises(
        ValueError,
        match="'deepspeed-16-mixed' is made for the deepspeed strategy: use 'fsdp-16-mixed'",
    ):
        registry_plugins(["deepspeed-16-mixed"], strategy="fsdp")


def test_lightnings_fsdp_strategies_take_the_adapter_and_its_policy() -> None:
    from lightning.fabric.strategies import FSDPStrategy as FabricFSDPStrategy
    from lightning.pytorch.strategies import FSDPStrategy as TrainerFSDPStrategy

    for value in ("bf16-mixed", "16-mixed", "bf16-true", "32-true"):
        plugin = pr.load(f"fsdp-{value}", device="cpu")
        for strategy_class, field in (
            (FabricFSDPStrategy, "precision"),
            (TrainerFSDPStrategy, "precision_plugin"),
        ):
            adapter = registry_plugins([plugin], strategy="fsdp")[0]
            strategy = strategy_class(**{field: adapter})
            assert getattr(strategy, field) is adapter
            # the policy Lightning wraps the model with is our plugin's
            assert strategy.mixed_precision_config == plugin.mixed_precision_config
        assert adapter.scaler is getattr(plugin, "scaler", None)


def test_lightning_itself_refuses_fsdp_on_the_cpu() -> None:
    """A Lightning limit, not ours (our FSDP plugin trains on the CPU with raw FSDP:
    tests/test_precision.py); documented in docs/lightning.md."""
    with pytest.raises(ValueError, match=r"requires a GPU accelerator|only available on GPU"):
        Trainer(strategy="fsdp", plugins=["fsdp-bf16-mixed"], **_quiet())


@pytest.mark.parametrize("value", ["32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true"])
def test_lightnings_deepspeed_strategy_builds_the_same_config_from_our_adapter(value: str) -> None:
    skip_unless_installed("deepspeed")
    from lightning.fabric.plugins.precision import DeepSpeedPrecision as Theirs
    from lightning.fabric.strategies import DeepSpeedStrategy

    ours = DeepSpeedStrategy(
        precision=registry_plugins([f"deepspeed-{value}"], strategy="deepspeed")[0]
    )
    theirs = DeepSpeedStrategy(precision=Theirs(value))  # type: ignore[arg-type]
    ours._format_config()
    theirs._format_config()
    assert ours.config == theirs.config


@pytest.mark.slow
def test_fabric_deepspeed_adapter_drives_a_real_engine(tmp_path: Path) -> None:
    """Lightning's DeepSpeed strategy refuses the CPU; the adapter's calls reach a real
    DeepSpeed engine on the CPU the way Fabric's strategy makes them."""
    skip_unless_installed("deepspeed")
    script = f"""
import json, os, torch, deepspeed
os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                  MASTER_PORT=str({free_port()}))
from plugin_registry.lightning import registry_plugins
from plugin_registry.testing.reference_loop import make_data, make_model
adapter = registry_plugins(["deepspeed-bf16-mixed"], strategy="deepspeed")[0]
torch.manual_seed(0)
model = make_model()
engine, optimizer, _, _ = deepspeed.initialize(model=model, model_parameters=model.parameters(),
    config={{"train_micro_batch_size_per_gpu": 32, "bf16": {{"enabled": True}},
             "optimizer": {{"type": "Adam", "params": {{"lr": 1e-2, "torch_adam": True}}}}}})
x, y = make_data()
losses = []
for _ in range(20):
    out = engine(adapter.convert_input(x[:32]))
    loss = torch.nn.functional.mse_loss(out.float(), y[:32])
    adapter.backward(loss, engine)        # Fabric: the strategy hands over the engine
    adapter.optimizer_step(engine)
    losses.append(loss.item())
print(json.dumps({{"first": losses[0], "last": losses[-1], "steps": engine.global_steps}}))
"""
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), "DS_ACCELERATOR": "cpu"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["steps"] == 20
    assert out["last"] < out["first"]


def test_registry_plugins_warns_nothing_for_a_plain_call() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        registry_plugins(["bf16-mixed", "torch"])


@pytest.mark.needs("deepspeed")
def test_deepspeed_adapter_refuses_a_skipped_backward_as_lightnings_does() -> None:
    """Under the Trainer a training step returning None skips the step; DeepSpeed's
    engine counts micro-batches itself, so Lightning refuses that there, and so do we."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.plugins.precision import DeepSpeedPrecision as Theirs

    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    module = Regressor()
    trainer.strategy.connect(module)
    module.trainer = trainer
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    for plugin in (
        Theirs("bf16-mixed"),
        registry_plugins(["deepspeed-bf16-mixed"], strategy="deepspeed")[0],
    ):
        with pytest.raises(MisconfigurationException, match="Skipping backward"):
            plugin.optimizer_step(optimizer, model=module, closure=lambda: None)
    # other strategies skip the step quietly, as Lightning's do
    plain = registry_plugins(["bf16-mixed"])[0]
    assert plain.optimizer_step(optimizer, model=module, closure=lambda: None) is None
