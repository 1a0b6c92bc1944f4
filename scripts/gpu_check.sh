#!/usr/bin/env bash
# GPU check (docs/benchmarks.md, "GPU"): the CUDA provider's outputs against the CPU run of the
# shipped model, then per-call timings for batch sizes 1-256. Needs `seqserve[gpu]` for the GPU
# side; without CUDA it runs CPU-only, which checks the script itself.
#   bash scripts/gpu_check.sh              # check and print
#   bash scripts/gpu_check.sh --record     # and record the figures in docs/
#   bash scripts/gpu_check.sh --require-gpu
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
exec "$PY" scripts/gpu_check.py "$@"
