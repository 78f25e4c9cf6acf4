"""Registry plugins inside real Lightning: a Fabric loop and a Trainer fit, on the CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("lightning", reason="lightning is not installed (the [lightning] extra)")

import lightning as L

from builtin_plugins.checkpoint_io.torch_io import TorchCheckpointIO
from plugin_registry.lightning import (
    RegistryCheckpointIO,
    RegistryEnvironment,
    RegistryPrecision,
    registry_plugins,
    resolution_plugins,
    to_lightning,
)
from plugin_registry.resolver import resolve
from plugin_registry.resolver.preferences import Preferences
from plugin_registry.testing.reference_loop import make_data, make_model
from tests._support.support import Venv, free_port, skip_unless_installed

SLURM_ONE_TASK = {
    "SLURM_NTASKS": "1",
    "SLURM_NTASKS_PER_NODE": "1",
    "SLURM_JOB_NAME": "train",
    "SLURM_JOB_ID": "4242",
    "SLURM_PROCID": "0",
    "SLURM_LOCALID": "0",
    "SLURM_NODEID": "0",
    "SLURM_NODELIST": "localhost",
}


pytestmark = pytest.mark.usefixtures("no_launcher_env")


def _fabric_loop(fabric: Any, steps: int = 60) -> tuple[list[float], Any, Any]:
    torch.manual_seed(0)
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model, optimizer = fabric.setup(model, optimizer)
    x, y = make_data()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        out = model(x)
        loss = torch.nn.functional.mse_loss(out.float(), y)
        fabric.backward(loss)
        optimizer.step()
        losses.append(loss.item())
    return losses, model, optimizer


def test_fabric_trains_with_registry_plugins_and_checkpoints_through_them(tmp_path: Path) -> None:
    plugins = registry_plugins(["bf16-mixed", "torch", "lightning"])
    assert [type(p) for p in plugins] == [
        RegistryPrecision,
        RegistryCheckpointIO,
        RegistryEnvironment,
    ]
    fabric = L.Fabric(accelerator="cpu", devices=1, plugins=plugins)
    assert fabric.strategy.precision is plugins[0]
    assert isinstance(fabric.strategy.checkpoint_io.plugin, TorchCheckpointIO)
    losses, model, optimizer = _fabric_loop(fabric)
    assert sum(losses[-5:]) / 5 < losses[0] * 0.5
    seen: list[torch.dtype] = []
    model.module[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    out = model(torch.randn(2, 16))
    assert seen == [torch.bfloat16]  # our autocast runs inside Fabric's forward
    assert out.dtype == torch.float32  # and our convert_output hands back float32
    path = tmp_path / "fabric.ckpt"
    fabric.save(path, {"model": model, "optimizer": optimizer, "step": 60})
    assert path.exists() and not list(tmp_path.glob(".*tmp*"))  # atomic: no leftovers
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    state = {"model": model, "optimizer": optimizer, "step": 0}
    fabric.load(path, state)
    assert state["step"] == 60
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key]), key


def test_fabric_with_bitsandbytes_and_slurm(monkeypatch: pytest.MonkeyPatch) -> None:
    skip_unless_installed("bitsandbytes")
    for key, value in SLURM_ONE_TASK.items():
        monkeypatch.setenv(key, value)
    # DDP with one task: the SLURM environment supplies rank, world size and the
    # rendezvous address of a real (one-process, gloo) process group.
    fabric = L.Fabric(
        accelerator="cpu",
        devices=1,
        strategy="ddp",
        plugins=registry_plugins(["bitsandbytes-nf4", "slurm"]),
    )
    fabric.launch()
    assert torch.distributed.is_initialized()
    assert torch.distributed.get_world_size() == 1
    env = fabric.strategy.cluster_environment
    assert type(env.plugin).__name__ == "SLURMEnvironment"
    assert (env.world_size(), env.global_rank()) == (1, 0)
    import bitsandbytes as bnb

    model = fabric.setup_module(make_model())
    linears = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert linears and all(m.weight.quant_type == "nf4" for m in linears)
    x, _ = make_data()
    assert torch.isfinite(model(x)).all()
    torch.distributed.destroy_process_group()


def test_resolver_hands_lightning_its_choices() -> None:
    res = resolve(precision="bf16-mixed", hardware=None, preferences=Preferences())
    plugins = resolution_plugins(res)
    fabric = L.Fabric(accelerator="cpu", devices=1, plugins=plugins)
    losses, _, _ = _fabric_loop(fabric, steps=30)
    assert losses[-1] < losses[0]
    assert fabric.strategy.precision.plugin.precision == "bf16-mixed"


class Regressor(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = make_model()
        self.autocast_dtypes: set[torch.dtype] = set()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        out = self.net(x)
        self.autocast_dtypes.add(out.dtype)
        loss = torch.nn.functional.mse_loss(out.float(), y)
        self.log("loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def _loader() -> Any:
    x, y = make_data()
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)


def _trainer(tmp_path: Path, max_steps: int, **kw: Any) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=max_steps,
        default_root_dir=tmp_path,
        plugins=registry_plugins(["bf16-mixed", "torch", "lightning"]),
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        **kw,
    )


def test_trainer_fits_saves_and_resumes_through_registry_plugins(tmp_path: Path) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    ckpt_dir = tmp_path / "ckpt"
    trainer = _trainer(tmp_path, 20, callbacks=[ModelCheckpoint(dirpath=ckpt_dir, save_last=True)])
    assert isinstance(trainer.strategy.precision_plugin, RegistryPrecision)
    assert isinstance(trainer.strategy.checkpoint_io.plugin, TorchCheckpointIO)
    model = Regressor()
    trainer.fit(model, _loader())
    assert trainer.global_step == 20
    assert model.autocast_dtypes == {torch.bfloat16}
    last = ckpt_dir / "last.ckpt"
    assert last.exists()
    # our IO wrote it and reads it back with weights_only=True
    assert TorchCheckpointIO().load_checkpoint(last)["global_step"] == 20
    resumed = Regressor()
    trainer2 = _trainer(tmp_path, 30)
    trainer2.fit(resumed, _loader(), ckpt_path=str(last))
    assert trainer2.global_step == 30
    # Adam's own step count went on from the checkpoint's 20: its state was restored
    optimizer = trainer2.optimizers[0]
    steps = {int(state["step"]) for state in optimizer.state.values()}
    assert steps == {30}


def test_adapters_pass_lightning_plugins_through_and_reject_others() -> None:
    from lightning.fabric.plugins import Precision as LightningPrecision

    theirs = LightningPrecision()
    assert to_lightning(theirs) is theirs
    with pytest.raises(TypeError, match="not a registry plugin"):
        to_lightning(object())


def test_third_party_plugins_run_in_fabric(good_venv: Venv, tmp_path: Path) -> None:
    """The example package's checkpoint IO and environment, installed with pip, in Fabric."""
    acme = {
        "ACME_JOB_ID": "1",
        "ACME_WORLD_SIZE": "1",
        "ACME_RANK": "0",
        "ACME_MAIN_PORT": str(free_port()),
    }
    out = good_venv.json(
        f"""
        import json, torch, lightning as L
        from plugin_registry.lightning import registry_plugins
        fabric = L.Fabric(accelerator="cpu", devices=1, strategy="ddp",
                          plugins=registry_plugins(["acme-compressed-lzma", "acme-scheduler"]))
        fabric.launch()
        model = torch.nn.Linear(4, 4)
        fabric.save({str(tmp_path / "m.ckpt")!r}, {{"model": model}})
        state = {{"model": torch.nn.Linear(4, 4)}}
        fabric.load({str(tmp_path / "m.ckpt")!r}, state)
        same = torch.equal(state["model"].weight, model.weight)
        print(json.dumps({{"io": type(fabric.strategy.checkpoint_io.plugin).__name__,
                          "env": type(fabric.strategy.cluster_environment.plugin).__name__,
                          "same": same}}))
        """,
        **acme,
    )
    assert out == {"io": "CompressedCheckpointIO", "env": "SchedulerEnvironment", "same": True}
    with open(tmp_path / "m.ckpt", "rb") as fh:
        assert fh.read(6) == b"\xfd7zXZ\x00"  # lzma, as the plugin promised


def test_adapters_are_named_for_what_they_are() -> None:
    import plugin_registry as pr
    import plugin_registry.lightning as bridge

    env = bridge.to_lightning(pr.load("slurm"))
    assert type(env).__name__ == "RegistryEnvironment"
    assert repr(env).startswith("RegistryEnvironment(SLURMEnvironment(")
    io = bridge.to_lightning(pr.load("torch"))
    assert repr(io) == "RegistryCheckpointIO(TorchCheckpointIO(weights_only=True))"
    assert not hasattr(bridge, "LightningEnvironment")  # no pre-release alias
