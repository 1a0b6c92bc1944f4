#!/usr/bin/env bash
# Mutation testing of the serving core: a thin wrapper around scripts/mutation.py (parallel,
# coverage-guided; see its docstring and docs/testing.md). Not in CI.
#
# Usage: bash scripts/mutation.sh [mutation.py options]     e.g. --modules memory.py --sample 20
# Needs cosmic-ray and coverage in the venv: .venv/bin/pip install cosmic-ray coverage
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-$PWD/.venv/bin/python}" scripts/mutation.py "$@"
