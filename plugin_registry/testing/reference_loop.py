"""A small reference training loop that drives any precision plugin through its interface.

Used by the tests (does a plugin train, and in the dtypes it promises?), by the
benchmarks (its step time against hand-written loops) and by the examples. The
task is synthetic and seeded: a 3-layer MLP regressing ``sin`` of a random
projection, so every run with the same seed sees the same data.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from plugin_registry.kinds.precision import Precision


@dataclasses.dataclass
class TrainResult:
    losses: list[float]
    #: dtypes seen on the last step: "params", "activations" (each Linear's output),
    #: "grads", "loss" -- each a sorted list of dtype names.
    dtypes: dict[str, list[str]]
    model: Any
    optimizer: Any
    skipped_steps: int = 0


def make_data(seed: int = 0, samples: int = 512, features: int = 16) -> tuple[Any, Any]:
    """Inputs and targets of the synthetic task, in float32."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, features, generator=g)
    w = torch.randn(features, 1, generator=g) / features**0.5
    y = torch.sin(3 * (x @ w))
    return x, y


def make_model(features: int = 16, hidden: int = 64) -> Any:
    import torch

    return torch.nn.Sequential(
        torch.nn.Linear(features, hidden),
        torch.nn.Tanh(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.Tanh(),
        torch.nn.Linear(hidden, 1),
    )


def train(
    precision: Precision,
    *,
    steps: int = 150,
    lr: float = 1e-2,
    seed: int = 0,
    batch_size: int = 64,
    clip: float | None = None,
    model: Any | None = None,
    wrap: Any | None = None,
    device: str = "cpu",
    setup: Any | None = None,
) -> TrainResult:
    """Train the reference model with ``precision``; ``wrap`` may wrap it (FSDP, DDP).

    ``setup(model, optimizer) -> (model, optimizer)`` replaces both, for engines
    that own the optimizer (DeepSpeed returns its engine as both).

    The order of calls is Fabric's: module_init_context and convert_module once;
    per step convert_input, forward_context, convert_output, pre_backward,
    backward, post_backward, unscale_gradients (when clipping), optimizer_step.
    """
    import torch

    torch.manual_seed(seed)
    x, y = make_data(seed)
    x, y = x.to(device), y.to(device)
    if model is None:
        with precision.module_init_context():
            model = make_model(x.shape[1])
    model = precision.convert_module(model.to(device))
    if wrap is not None:
        model = wrap(model)
    # Adam's default eps (1e-8) is zero in float16, so pure float16 weights need a
    # larger one -- as anyone training in 16-true must choose.
    half = any(p.dtype == torch.float16 for p in model.parameters())
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, eps=1e-4 if half else 1e-8)
    if setup is not None:
        model, optimizer = setup(model, optimizer)
    seen: dict[str, set[str]] = {"activations": set()}

    def record(_module: Any, _inputs: Any, output: Any) -> None:
        seen["activations"].add(str(output.dtype).removeprefix("torch."))

    hooks = [
        m.register_forward_hook(record) for m in model.modules() if isinstance(m, torch.nn.Linear)
    ]
    losses: list[float] = []
    skipped = 0
    try:
        for step in range(steps):
            start = (step * batch_size) % x.shape[0]
            xb, yb = precision.convert_input(
                (x[start : start + batch_size], y[start : start + batch_size])
            )
            seen["activations"].clear()
            with precision.forward_context():
                out = model(xb)
            out = precision.convert_output(out)
            loss = torch.nn.functional.mse_loss(out, yb.to(out.dtype))
            optimizer.zero_grad()
            precision.pre_backward(loss, model)  # return values ignored, as Fabric does
            precision.backward(loss, model)
            precision.post_backward(loss, model)
            if clip is not None:
                precision.unscale_gradients(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            scale_before = _scale(precision)
            precision.optimizer_step(optimizer)
            scale_after = _scale(precision)
            if scale_before is not None and scale_after is not None and scale_after < scale_before:
                skipped += 1  # a GradScaler lowers its scale when it skips a step
            losses.append(float(loss.detach()))
    finally:
        for h in hooks:
            h.remove()
    dtypes = {
        "params": sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters()}),
        "grads": sorted(
            {
                str(p.grad.dtype).removeprefix("torch.")
                for p in model.parameters()
                if p.grad is not None
            }
        ),
        "activations": sorted(seen["activations"]),
        "loss": [str(loss.dtype).removeprefix("torch.")],
    }
    return TrainResult(losses, dtypes, model, optimizer, skipped)


def _scale(precision: Precision) -> float | None:
    scaler = getattr(precision, "scaler", None)
    if scaler is None or not getattr(scaler, "is_enabled", lambda: True)():
        return None
    try:
        return float(scaler.get_scale())
    except (RuntimeError, AttributeError):
        return None
