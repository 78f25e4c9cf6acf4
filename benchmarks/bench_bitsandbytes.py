"""bitsandbytes modes: weight memory against float32, and CPU forward time against float32.

For a 4096x4096 Linear and for the reference model, each mode's quantized weight
bytes (with the quantization scales) over the float32 weight bytes; forward time
of a batch of 64 through the 4096x4096 layer, median of head-to-head repeats.

Run: ``python benchmarks/bench_bitsandbytes.py [--repeat 20] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from builtin_plugins.precision.bitsandbytes import MODES, BitsandbytesPrecision
from plugin_registry.testing.reference_loop import make_model


def weight_bytes(model: torch.nn.Module) -> int:
    total = 0
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if weight is None:
            continue
        tensors = [weight]
        state = getattr(weight, "quant_state", None)
        if state is not None:
            tensors += [
                v for v in state.as_dict(packed=False).values() if isinstance(v, torch.Tensor)
            ]
        scb = getattr(weight, "SCB", None)
        if scb is not None:
            tensors.append(scb)
        total += sum(t.numel() * t.element_size() for t in tensors)
    return total


def forward_time(model: Any, x: torch.Tensor, repeat: int) -> float:
    with torch.no_grad():
        for _ in range(3):
            model(x)
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.manual_seed(0)
    big = torch.nn.Sequential(torch.nn.Linear(4096, 4096, bias=False))
    small = make_model()
    x = torch.randn(64, 4096)
    fp32_big, fp32_small = weight_bytes(big), weight_bytes(small)
    base_time = forward_time(big, x, args.repeat)
    rows: dict[str, dict[str, float]] = {}
    print(f"{'mode':14s} {'4096x4096':>10s} {'reference':>10s} {'forward':>10s} {'vs fp32':>8s}")
    print(f"{'float32':14s} {'1.000':>10s} {'1.000':>10s} {base_time * 1e3:8.2f}ms {'1.00':>8s}")
    for mode in MODES:
        plugin = BitsandbytesPrecision(mode)
        qbig = plugin.convert_module(torch.nn.Sequential(torch.nn.Linear(4096, 4096, bias=False)))
        qsmall = plugin.convert_module(make_model())
        t = forward_time(qbig, x, args.repeat)
        rows[mode] = {
            "memory_4096": weight_bytes(qbig) / fp32_big,
            "memory_reference": weight_bytes(qsmall) / fp32_small,
            "forward_s": t,
            "forward_ratio": t / base_time,
        }
        r = rows[mode]
        print(
            f"{mode:14s} {r['memory_4096']:10.3f} {r['memory_reference']:10.3f} "
            f"{t * 1e3:8.2f}ms {r['forward_ratio']:8.2f}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"fp32_forward_s": base_time, "modes": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
