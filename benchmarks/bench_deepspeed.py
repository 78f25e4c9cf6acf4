"""DeepSpeed step time through DeepSpeedPrecision against DeepSpeed driven directly.

Two engines on the same model and config (bf16, ZeRO-1 by default) in one process
on the CPU; they take steps head to head, alternating, and their median step
times are compared.

Run: ``python benchmarks/bench_deepspeed.py [--steps 100] [--stage 1] [--precision bf16-mixed]``.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from typing import Any

os.environ.setdefault("DS_ACCELERATOR", "cpu")
for _key, _value in {
    "MASTER_ADDR": "127.0.0.1",
    "MASTER_PORT": "29517",
    "RANK": "0",
    "LOCAL_RANK": "0",
    "WORLD_SIZE": "1",
}.items():
    os.environ.setdefault(_key, _value)

import torch  # noqa: E402

import plugin_registry as pr  # noqa: E402

WIDTH, BATCH = 1024, 64


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--stage", type=int, default=1)
    parser.add_argument("--precision", default="bf16-mixed")
    args = parser.parse_args()
    import deepspeed

    deepspeed.init_distributed(dist_backend="gloo")
    plugin = pr.load(f"deepspeed-{args.precision}")
    config = {
        "train_micro_batch_size_per_gpu": BATCH,
        "gradient_accumulation_steps": 1,
        "zero_optimization": {"stage": args.stage},
        "zero_allow_untested_optimizer": True,
        **plugin.config_fragment(),
    }
    torch.manual_seed(0)
    base = torch.nn.Sequential(
        torch.nn.Linear(WIDTH, WIDTH), torch.nn.ReLU(), torch.nn.Linear(WIDTH, 1)
    )

    def engine() -> Any:
        model = copy.deepcopy(base)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        return deepspeed.initialize(model=model, optimizer=opt, config=config)[0]

    ours, direct = engine(), engine()
    dtype = {"bf16": torch.bfloat16, "16": torch.float16}.get(
        args.precision.split("-")[0], torch.float32
    )
    x, y = torch.randn(BATCH, WIDTH), torch.randn(BATCH, 1)

    def plugin_step() -> None:
        xb, yb = plugin.convert_input((x, y))
        with plugin.forward_context():
            out = ours(xb)
        out = plugin.convert_output(out)
        loss = torch.nn.functional.mse_loss(out, yb.to(out.dtype))
        plugin.backward(loss, ours)
        plugin.optimizer_step(ours)

    def direct_step() -> None:
        out = direct(x.to(dtype)).float()
        loss = torch.nn.functional.mse_loss(out, y)
        direct.backward(loss)
        direct.step()

    for _ in range(10):
        plugin_step()
        direct_step()
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(args.steps):
        for j in (0, 1) if i % 2 == 0 else (1, 0):
            t0 = time.perf_counter()
            (plugin_step, direct_step)[j]()
            times[j].append(time.perf_counter() - t0)
    mine, theirs = statistics.median(times[0]), statistics.median(times[1])
    print(
        f"DeepSpeed {args.precision} ZeRO-{args.stage} on the CPU, median of {args.steps} "
        f"steps head to head: plugin {mine * 1e3:.2f} ms, direct {theirs * 1e3:.2f} ms, "
        f"ratio {mine / theirs:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
