#!/usr/bin/env bash
# Exactly what CI runs for style and types.
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check .
ruff format --check .
# mypy resolves modules by folder; the install maps service/ to seqserve.service, so check a
# link tree laid out as the installed package (build/ is ignored by git).
tree=build/mypy-tree/seqserve
rm -rf build/mypy-tree && mkdir -p "$tree"
for f in seqserve/*.py seqserve/py.typed; do ln -s "$PWD/$f" "$tree/"; done
ln -s "$PWD/service" "$tree/service"
ln -s "$PWD/seqserve/client" "$tree/client"
mypy "$tree"/*.py "$tree/service" "$tree/client"
