#!/usr/bin/env bash
# The CUDA paths of the precision plugins, for a machine with an NVIDIA GPU:
# 16-mixed with GradScaler (skipped steps) and bf16-mixed, bitsandbytes on CUDA,
# DeepSpeed fp16, Transformer Engine fp8 (compute capability 8.9+).
#   bash benchmarks/gpu/run_precision.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
python -m pip install -q torch  # the CUDA build this machine's driver supports
DS_BUILD_OPS=0 python -m pip install -q --no-build-isolation deepspeed
python -m pip install -q -e '.[test,bitsandbytes,transformer-engine]'
python -m pytest -q -rs tests/test_precision.py tests/test_bitsandbytes.py \
    tests/test_deepspeed.py tests/test_transformer_engine.py
