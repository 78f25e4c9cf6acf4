"""Precision plugins' CPU training-step time against hand-written loops doing the same work.

Every variant trains its own copy of the same MLP (1024 wide, batch 256, SGD).
Each comparison runs its two variants head to head, alternating ABBA, and
compares their median step times.

* bf16-mixed: our MixedPrecision driven through the plugin interface, against a
  hand-written ``torch.autocast`` loop (target <= 1.02x) and against Lightning
  Fabric with its MixedPrecision (target: no slower).
* 64-true and bf16-true: our plugins against hand-written float64 / bfloat16 loops
  (target <= 1.02x).
* bf16-mixed in Hugging Face Accelerate: ``plugin_registry.accelerate.Accelerator(
  plugins=["bf16-mixed"])`` against Accelerate's own ``mixed_precision="bf16"``
  (target <= 1.02x).

Run: ``python benchmarks/bench_precision.py [--steps 200] [--check]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import plugin_registry as pr

WIDTH, BATCH = 1024, 256


def base_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(WIDTH, WIDTH),
        torch.nn.ReLU(),
        torch.nn.Linear(WIDTH, WIDTH),
        torch.nn.ReLU(),
        torch.nn.Linear(WIDTH, 1),
    )


def plugin_step(name: str, model: torch.nn.Module) -> Callable[[Any, Any], None]:
    plugin = pr.load(name, **({"device": "cpu"} if "mixed" in name else {}))
    model = plugin.convert_module(model)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step(x: Any, y: Any) -> None:
        x, y = plugin.convert_input((x, y))
        with plugin.forward_context():
            out = model(x)
        out = plugin.convert_output(out)
        loss = torch.nn.functional.mse_loss(out, y.to(out.dtype))
        opt.zero_grad(set_to_none=True)
        plugin.pre_backward(loss, model)
        plugin.backward(loss, model)
        plugin.post_backward(loss, model)
        plugin.optimizer_step(opt)

    return step


def hand_step(
    dtype: torch.dtype, autocast: bool, model: torch.nn.Module
) -> Callable[[Any, Any], None]:
    if not autocast:
        model = model.to(dtype)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step(x: Any, y: Any) -> None:
        if autocast:
            with torch.autocast("cpu", dtype=dtype):
                out = model(x)
            out = out.float()
        else:
            out = model(x.to(dtype)).float()
        loss = torch.nn.functional.mse_loss(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def fabric_step(model: torch.nn.Module) -> Callable[[Any, Any], None] | None:
    try:
        from lightning.fabric import Fabric
    except ImportError:
        return None
    fabric = Fabric(accelerator="cpu", devices=1, precision="bf16-mixed")
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    model, opt = fabric.setup(model, opt)

    def step(x: Any, y: Any) -> None:
        out = model(x)
        loss = torch.nn.functional.mse_loss(out.float(), y)
        opt.zero_grad(set_to_none=True)
        fabric.backward(loss)
        opt.step()

    return step


def accelerate_steps(
    model: torch.nn.Module,
) -> tuple[Callable[[Any, Any], None], Callable[[Any, Any], None]] | None:
    """Accelerate's own bf16 and the registry's bf16-mixed plugin in Accelerate.

    Accelerate keeps one state per process and refuses a second mixed precision; each
    step puts its Accelerator's state back first (a dict swap of ~20 keys, timed with
    both variants alike)."""
    try:
        from accelerate import Accelerator as Theirs
        from accelerate.state import AcceleratorState

        from plugin_registry.accelerate import Accelerator as Ours
    except ImportError:
        return None
    made = []
    for build in (lambda: Theirs(mixed_precision="bf16"), lambda: Ours(plugins=["bf16-mixed"])):
        AcceleratorState._reset_state()
        accelerator = build()
        net = copy.deepcopy(model)
        opt = torch.optim.SGD(net.parameters(), lr=1e-3)
        net, opt = accelerator.prepare(net, opt)
        made.append((dict(AcceleratorState._shared_state), accelerator, net, opt))

    def stepper(state: dict[str, Any], accelerator: Any, net: Any, opt: Any) -> Any:
        def step(x: Any, y: Any) -> None:
            AcceleratorState._shared_state.clear()
            AcceleratorState._shared_state.update(state)
            loss = torch.nn.functional.mse_loss(net(x), y)
            opt.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            opt.step()

        return step

    return stepper(*made[1]), stepper(*made[0])


def head_to_head(
    a: Callable[[Any, Any], None], b: Callable[[Any, Any], None], steps: int, x: Any, y: Any
) -> tuple[float, float]:
    """Median step times of ``a`` and ``b``, alternating ABBA so neither runs after a
    heavier neighbour more often than the other."""
    for step in (a, b):  # warm-up: allocator, autocast caches
        for _ in range(3):
            step(x, y)
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(steps):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for j in order:
            t0 = time.perf_counter()
            (a, b)[j](x, y)
            times[j].append(time.perf_counter() - t0)
    return statistics.median(times[0]), statistics.median(times[1])


def run(steps: int) -> dict[str, float]:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(BATCH, WIDTH, generator=g), torch.randn(BATCH, 1, generator=g)
    model = base_model()
    fresh = lambda: copy.deepcopy(model)  # noqa: E731 - same initial weights for every variant
    out: dict[str, float] = {}
    pairs = [
        (
            "bf16-mixed",
            plugin_step("bf16-mixed", fresh()),
            "bf16-mixed hand-written",
            hand_step(torch.bfloat16, True, fresh()),
        ),
        (
            "64-true",
            plugin_step("64-true", fresh()),
            "64-true hand-written",
            hand_step(torch.float64, False, fresh()),
        ),
        (
            "bf16-true",
            plugin_step("bf16-true", fresh()),
            "bf16-true hand-written",
            hand_step(torch.bfloat16, False, fresh()),
        ),
    ]
    fabric = fabric_step(fresh())
    if fabric is not None:
        pairs.append(
            (
                "bf16-mixed",
                plugin_step("bf16-mixed", fresh()),
                "bf16-mixed Lightning Fabric",
                fabric,
            )
        )
    in_accelerate = accelerate_steps(fresh())
    if in_accelerate is not None:
        pairs.append(
            ("bf16-mixed in Accelerate", *in_accelerate[:1], "Accelerate bf16", in_accelerate[1])
        )
    # Warm the whole process first (allocator pools, CPU clock): the first pair
    # measured would otherwise pay for it.
    for _, ours, _, baseline in pairs:
        for _ in range(30):
            ours(x, y)
            baseline(x, y)
    for name, ours, baseline_name, baseline in pairs:
        mine, theirs = head_to_head(ours, baseline, steps, x, y)
        out[f"{name} plugin (vs {baseline_name})"] = mine
        out[baseline_name] = theirs
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    r = run(args.steps)
    print(
        f"CPU step time, median of {args.steps} steps each, head to head "
        f"(torch threads: {torch.get_num_threads()})"
    )
    for name, seconds in r.items():
        print(f"  {name:52s} {seconds * 1e3:8.2f} ms")
    ratios = {
        f"{name} plugin / {baseline}": r[f"{name} plugin (vs {baseline})"] / r[baseline]
        for name, baseline in (
            ("bf16-mixed", "bf16-mixed hand-written"),
            ("64-true", "64-true hand-written"),
            ("bf16-true", "bf16-true hand-written"),
            ("bf16-mixed", "bf16-mixed Lightning Fabric"),
            ("bf16-mixed in Accelerate", "Accelerate bf16"),
        )
        if baseline in r
    }
    for name, ratio in ratios.items():
        print(f"  {name:52s} {ratio:8.3f}")
    ok = (
        all(v <= 1.02 for k, v in ratios.items() if "hand-written" in k or "Accelerate" in k)
        and ratios.get("bf16-mixed plugin / bf16-mixed Lightning Fabric", 1.0) <= 1.0
    )
    targets = "<= 1.02x hand-written and Accelerate's own, <= 1.00x Fabric"
    print(f"targets ({targets}): {'met' if ok else 'MISSED'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"times": r, "ratios": ratios}, indent=2))
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    raise SystemExit(main())
