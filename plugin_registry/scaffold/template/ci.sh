#!/usr/bin/env bash
# This package's CI, the same in .github/workflows/ci.yml and on your machine: bash ci.sh
#
# plugin-registry is not on PyPI yet. Until it is, say where pip finds it:
#   PLUGIN_REGISTRY_INDEX=https://host/simple/  an index that has it (added beside PyPI)
#   PLUGIN_REGISTRY_WHEEL=path/or/URL.whl       a wheel (e.g. built by `python -m build`)
# or pip's own PIP_INDEX_URL for an index that serves everything (a mirror of PyPI).
# TORCH_INDEX_URL: where torch comes from; the workflow sets PyTorch's CPU index, since
# an unpinned torch from PyPI is a CUDA build of several GB.
set -euo pipefail
cd "$$(dirname "$$0")"
PYTHON=$${PYTHON:-python}
if [ -n "$${PLUGIN_REGISTRY_INDEX:-}" ]; then
    export PIP_EXTRA_INDEX_URL="$${PLUGIN_REGISTRY_INDEX} $${PIP_EXTRA_INDEX_URL:-}"
fi
# torch first: what is installed later must not pull another build of it.
"$$PYTHON" -m pip install $${TORCH_INDEX_URL:+--index-url "$$TORCH_INDEX_URL"} 'torch>=2.4'
if [ -n "$${PLUGIN_REGISTRY_WHEEL:-}" ]; then
    "$$PYTHON" -m pip install "$$PLUGIN_REGISTRY_WHEEL"
fi
"$$PYTHON" -m pip install -e '.[test]' build
"$$PYTHON" -m plugin_registry.cli doctor   # registration module light, targets import
"$$PYTHON" -m pytest
"$$PYTHON" -m build
