#!/usr/bin/env bash
# Exactly what CI runs for style and types.
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check .
ruff format --check .
mypy service
