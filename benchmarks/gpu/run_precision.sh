#!/usr/bin/env bash
# The CUDA paths of the precision plugins, for a machine with an NVIDIA GPU:
# 16-mixed with GradScaler (skipped steps), bf16-mixed, and the CPU suite beside them.
#   bash benchmarks/gpu/run_precision.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
python -m pip install -q torch  # the CUDA build this machine's driver supports
python -m pip install -q -e '.[test]'
python -m pytest -q -rs tests/test_precision.py
