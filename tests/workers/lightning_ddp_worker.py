"""Our Trainer and Fabric under Lightning's own DDP launcher: 2 CPU processes, gloo.

    python tests/workers/lightning_ddp_worker.py {trainer,fabric} DIR STEPS [CKPT]

Lightning starts the second process by running this script again; rank 0 writes
DIR/result-<mode>-<steps>.json: the world size, the adapters in use, the global
step reached and the optimizer's own step count (which shows a resume restored it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

from plugin_registry.lightning import Fabric, Trainer
from plugin_registry.testing.reference_loop import make_data, make_model


def _loader() -> Any:
    x, y = make_data()
    data = torch.utils.data.TensorDataset(x, y)
    return torch.utils.data.DataLoader(data, batch_size=32)


def run_trainer(out: Path, steps: int, ckpt: str | None) -> dict[str, Any]:
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    class Regressor(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.net = make_model()

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x).float(), y)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=1e-2)

    trainer = Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_steps=steps,
        plugins=["bf16-mixed", "torch"],
        default_root_dir=out,
        callbacks=[ModelCheckpoint(dirpath=out / "ckpt", save_last=True)],
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
    )
    trainer.fit(Regressor(), _loader(), ckpt_path=ckpt)
    optimizer = trainer.optimizers[0]
    return {
        "world_size": trainer.world_size,
        "precision": type(trainer.strategy.precision_plugin).__name__,
        "checkpoint_io": type(trainer.strategy.checkpoint_io.plugin).__name__,
        "global_step": trainer.global_step,
        "adam_steps": sorted({int(s["step"]) for s in optimizer.state.values()}),
    }


def run_fabric(out: Path, steps: int, ckpt: str | None) -> dict[str, Any]:
    fabric = Fabric(accelerator="cpu", devices=2, strategy="ddp", plugins=["bf16-mixed", "torch"])
    fabric.launch()
    torch.manual_seed(0)
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model, optimizer = fabric.setup(model, optimizer)
    state = {"model": model, "optimizer": optimizer, "step": 0}
    if ckpt is not None:
        fabric.load(ckpt, state)
    x, y = make_data()
    shard = slice(fabric.global_rank, None, fabric.world_size)
    while state["step"] < steps:
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x[shard]).float(), y[shard])
        fabric.backward(loss)
        optimizer.step()
        state["step"] += 1
    fabric.save(out / "fabric.ckpt", state)
    return {
        "world_size": fabric.world_size,
        "precision": type(fabric.strategy.precision).__name__,
        "checkpoint_io": type(fabric.strategy.checkpoint_io.plugin).__name__,
        "global_step": state["step"],
        "adam_steps": sorted({int(s["step"]) for s in optimizer.state.values()}),
    }


def main() -> None:
    mode, out, steps = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    ckpt = sys.argv[4] if len(sys.argv) > 4 else None
    result = (run_trainer if mode == "trainer" else run_fabric)(out, steps, ckpt)
    if torch.distributed.get_rank() == 0:
        (out / f"result-{mode}-{steps}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
