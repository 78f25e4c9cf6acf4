"""Resuming training of a quantized model: the Trainer (fit, validate, test, predict with
``ckpt_path``) and Fabric (``load`` after ``setup``), for every quantizing built-in and a
third-party quantizer, also with trainable adapters on a frozen quantized base.

Exact means exact: the restored weights equal the saved ones bit for bit, and a run cut at
an epoch boundary and resumed logs the same losses as the uninterrupted run.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("lightning", reason="lightning is not installed (the [lightning] extra)")

import lightning as L

import plugin_registry as pr
from plugin_registry import Registry
from plugin_registry.lightning import Fabric, Trainer
from tests._support.quantizer import install_rowwise

pytestmark = [pytest.mark.needs("bitsandbytes"), pytest.mark.usefixtures("no_launcher_env")]

BUILTIN_MODES = ["nf4", "nf4-dq", "fp4", "int8", "int8-training"]


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    return install_rowwise(tmp_path, monkeypatch)


class Model(L.LightningModule):
    """Two Linear layers; with ``adapter``, a low-rank trainable adapter beside the first
    (LoRA's shape: the base is frozen and quantized, the adapter trains in float)."""

    def __init__(self, adapter: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1)
        )
        self.adapter = (
            torch.nn.Sequential(torch.nn.Linear(16, 4, bias=False), torch.nn.Linear(4, 32))
            if adapter
            else None
        )
        if adapter:
            for p in self.net.parameters():
                p.requires_grad_(False)
        self.losses: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.net[0](x)
        if self.adapter is not None:
            hidden = hidden + self.adapter(x)
        out: torch.Tensor = self.net[2](self.net[1](hidden))
        return out

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self(x), y)
        self.losses.append(loss.item())
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val", torch.nn.functional.mse_loss(self(batch[0]), batch[1]))

    test_step = validation_step

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self(batch[0])

    def configure_optimizers(self) -> Any:
        trainable = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.SGD(trainable, lr=0.05, momentum=0.9)


def _loader() -> Any:
    g = torch.Generator().manual_seed(1)
    data = torch.utils.data.TensorDataset(
        torch.randn(64, 16, generator=g), torch.randn(64, 1, generator=g)
    )
    return torch.utils.data.DataLoader(data, batch_size=16)


def _plugin(mode: str, adapter: bool, registry: Registry | None) -> Any:
    name = mode if mode == "rowwise-int8" else f"bitsandbytes-{mode}"
    if adapter:
        return (registry or pr.default_registry()).load(name, ignore_modules={"adapter"})
    return name


def _trainer(mode: str, adapter: bool, registry: Registry | None, **kwargs: Any) -> Trainer:
    return Trainer(
        accelerator="cpu",
        devices=1,
        plugins=[_plugin(mode, adapter, registry)],
        registry=registry,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        **kwargs,
    )


def _tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items() if torch.is_tensor(v)}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a
    )


CASES = [
    *[pytest.param(m, False, id=m) for m in BUILTIN_MODES],
    pytest.param("nf4", True, id="nf4-adapter"),
    pytest.param("rowwise-int8", False, id="third-party"),
    pytest.param("rowwise-int8", True, id="third-party-adapter"),
]


@pytest.mark.parametrize(("mode", "adapter"), CASES)
def test_the_trainer_resumes_a_quantized_model_exactly(
    mode: str, adapter: bool, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    registry = request.getfixturevalue("third_party") if mode == "rowwise-int8" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice about workers and logging
        whole = Model(adapter)
        _trainer(mode, adapter, registry, max_epochs=2).fit(whole, _loader())
        first = Model(adapter)
        trainer = _trainer(mode, adapter, registry, max_epochs=1)
        trainer.fit(first, _loader())
        ckpt = tmp_path / "epoch1.ckpt"
        trainer.save_checkpoint(ckpt)
        saved = _tensors(first)

        restored = Model(adapter)  # validate, test and predict restore the same way
        checking = _trainer(mode, adapter, registry)
        checking.validate(restored, _loader(), ckpt_path=ckpt, verbose=False)
        assert _same(_tensors(restored), saved), "the restored weights differ from the saved"
        checking.test(Model(adapter), _loader(), ckpt_path=ckpt, verbose=False)
        predicted = checking.predict(Model(adapter), _loader(), ckpt_path=ckpt)
        assert predicted is not None
        first.eval()  # bitsandbytes' int8 computes in another way when it does not train
        with torch.no_grad():
            expected = torch.cat([first(x) for x, _ in _loader()])
        assert torch.equal(torch.cat(predicted), expected)  # type: ignore[arg-type]

        second = Model(adapter)
        _trainer(mode, adapter, registry, max_epochs=2).fit(second, _loader(), ckpt_path=ckpt)
    print(f"{mode}{' + adapter' if adapter else ''}: uninterrupted {whole.losses}")
    print(f"{mode}{' + adapter' if adapter else ''}: resumed       {first.losses + second.losses}")
    assert len(whole.losses) == 8
    assert first.losses + second.losses == whole.losses
    assert _same(_tensors(second), _tensors(whole))


@pytest.mark.parametrize(("mode", "adapter"), CASES)
def test_fabric_loads_a_quantized_checkpoint_after_setup_exactly(
    mode: str, adapter: bool, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    registry = request.getfixturevalue("third_party") if mode == "rowwise-int8" else None

    def run(steps: int, model: Model, load: Path | None = None) -> list[float]:
        fabric = Fabric(
            accelerator="cpu",
            devices=1,
            plugins=[_plugin(mode, adapter, registry)],
            registry=registry,
        )
        module, optimizer = fabric.setup(model, model.configure_optimizers())
        state = {"model": module, "optimizer": optimizer}
        if load is not None:
            fabric.load(load, state)
        losses = []
        batches = list(_loader())
        for x, y in batches[:steps]:
            loss = torch.nn.functional.mse_loss(module(x), y)
            optimizer.zero_grad()
            fabric.backward(loss)
            optimizer.step()
            losses.append(loss.item())
        if load is None:
            fabric.save(tmp_path / "fabric.ckpt", state)
        return losses

    whole = run(4, Model(adapter))
    first = Model(adapter)
    head = run(2, first)
    saved = _tensors(first)
    # The same batches again from step 3: the loader is not part of the state.
    second = Model(adapter)
    fabric = Fabric(
        accelerator="cpu", devices=1, plugins=[_plugin(mode, adapter, registry)], registry=registry
    )
    module, optimizer = fabric.setup(second, second.configure_optimizers())
    fabric.load(tmp_path / "fabric.ckpt", {"model": module, "optimizer": optimizer})
    assert _same(_tensors(second), saved), "the loaded weights differ from the saved"
    tail = []
    for x, y in list(_loader())[2:4]:
        loss = torch.nn.functional.mse_loss(module(x), y)
        optimizer.zero_grad()
        fabric.backward(loss)
        optimizer.step()
        tail.append(loss.item())
    assert head + tail == whole


def test_without_the_hook_a_quantized_checkpoint_does_not_fit_an_unconverted_model(
    tmp_path: Path,
) -> None:
    """What the hook is for: Lightning's own Trainer restores before converting."""
    from plugin_registry.lightning import registry_plugins

    first = Model()
    trainer = _trainer("nf4", False, None, max_epochs=1)
    trainer.fit(first, _loader())
    trainer.save_checkpoint(tmp_path / "a.ckpt")
    lightning_own = L.Trainer(
        accelerator="cpu",
        plugins=registry_plugins(["bitsandbytes-nf4"]),
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with pytest.raises(RuntimeError, match=r"Unexpected key\(s\) in state_dict"):
        lightning_own.validate(Model(), _loader(), ckpt_path=tmp_path / "a.ckpt", verbose=False)
