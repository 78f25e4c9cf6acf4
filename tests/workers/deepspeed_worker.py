"""One DeepSpeed training run of the reference model, driven by DeepSpeedPrecision.

    python tests/workers/deepspeed_worker.py OUT.json PRECISION ZERO_STAGE          # 1 process
    torchrun --nproc-per-node 2 tests/workers/deepspeed_worker.py OUT.json ...      # 2 processes

Rank 0 writes the losses, the dtypes seen and the world size.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

# Before deepspeed is imported; a CUDA machine runs on CUDA (NCCL is not needed for one node
# of gloo here, but the engine then computes on the GPU).
try:
    import torch as _torch

    _cuda = _torch.cuda.is_available()
except ImportError:
    _cuda = False
os.environ.setdefault("DS_ACCELERATOR", "cuda" if _cuda else "cpu")
for key, value in {
    "MASTER_ADDR": "127.0.0.1",
    "RANK": "0",
    "LOCAL_RANK": "0",
    "WORLD_SIZE": "1",
}.items():
    os.environ.setdefault(key, value)


def main() -> None:
    out, precision, stage = sys.argv[1], sys.argv[2], int(sys.argv[3])
    import deepspeed
    import torch.distributed as dist

    import plugin_registry as pr
    from plugin_registry.testing.reference_loop import train

    deepspeed.init_distributed(dist_backend="gloo")
    plugin = pr.load(f"deepspeed-{precision}")
    config = {
        "train_micro_batch_size_per_gpu": 64,
        "gradient_accumulation_steps": 1,
        "zero_optimization": {"stage": stage},
        **plugin.config_fragment(),
    }

    def setup(model: Any, optimizer: Any) -> tuple[Any, Any]:
        engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
        return engine, engine

    import torch

    device = "cuda" if os.environ["DS_ACCELERATOR"] == "cuda" else "cpu"
    if device == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    result = train(plugin, steps=150, setup=setup, device=device)
    if dist.get_rank() == 0:
        with open(out, "w") as fh:
            json.dump(
                {
                    "losses": result.losses,
                    "dtypes": result.dtypes,
                    "world_size": dist.get_world_size(),
                    "engine": type(result.model).__name__,
                },
                fh,
            )


if __name__ == "__main__":
    main()
    # Finished, result written: skip the interpreter's teardown, where torch's gloo group
    # aborts now and then ("terminate called without an active exception", exit -6; seen
    # in CI after rank 0 had written its result). A run that raised exits as before.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
