#!/usr/bin/env bash
# Install seqserve with its dev, train, redis and otel extras into .venv; run the whole suite.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "test.sh: $*" >&2; }
say "creating .venv (or reusing it)"
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# the first install downloads a few hundred MB (torch for the model tests): pip shows each
# package as it goes; a second run only checks what is there
say "installing seqserve with its dev, train, redis and otel extras into .venv (minutes the first time)"
set +e
.venv/bin/python -m pip install -e ".[dev,train,redis,otel]" 2>&1 \
  | grep --line-buffered -E '^(Collecting|Downloading|Installing|Successfully|ERROR|error)'
pip_status=${PIPESTATUS[0]}
set -e
if [ "$pip_status" -ne 0 ]; then
  say "pip install failed (status $pip_status)"
  exit "$pip_status"
fi
say "running the tests: pytest $*"
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "test.sh: pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"
