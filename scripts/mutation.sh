#!/usr/bin/env bash
# Mutation testing of the serving core with cosmic-ray: how many deliberate bugs the tests catch.
# Not in CI (hours on 2 cores); run it before closing work on these modules. See docs/testing.md.
#
# Usage: bash scripts/mutation.sh [--sample N] [--timeout S] [module.py ...]
#   no modules: the whole serving core (engine, batcher, state stores, session table, checks,
#   session locks, V2 sequences). --sample N tests only N mutants per module, drawn with a fixed
#   seed (a smoke run); without it every mutant is tested. --timeout: seconds per test run
#   (default 300); a mutant whose tests hang past it counts as killed.
# Needs cosmic-ray in the venv: .venv/bin/pip install cosmic-ray
# Each module is mutated in place, one mutant at a time, and restored (git checkout) at the end
# or on Ctrl-C, so a module with uncommitted changes is refused. Results: build/mutation/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$PWD/.venv/bin/python}
BIN=$(dirname "$PY")
OUT=build/mutation
SAMPLE=0
TIMEOUT=300

# The fast test selection that guards each module: in-process tests with the real app (and a
# real redis-server for the Redis store), no process-per-test e2e suites.
declare -A TESTS=(
  [service/engine.py]="tests/service"
  [service/batching/batcher.py]="tests/service/test_store_integrity.py tests/service/test_batching.py tests/service/test_admission.py tests/service/test_exactly_once.py tests/service/test_chunk_invariance.py tests/service/test_units.py"
  [service/batching/assemble.py]="tests/service/test_units.py tests/service/test_batching.py tests/service/test_chunk_invariance.py"
  [service/state/memory.py]="tests/service/test_auth.py tests/service/test_store_integrity.py tests/service/test_session_integrity.py tests/service/test_lifetimes.py tests/service/test_sessions.py tests/service/test_snapshot.py tests/service/test_exactly_once.py tests/service/test_units.py"
  [service/state/table.py]="tests/service/test_units.py tests/service/test_sessions.py tests/service/test_lifetimes.py"
  [service/state/slab.py]="tests/service/test_units.py tests/service/test_sessions.py tests/service/test_lifetimes.py"
  [service/state/codec.py]="tests/service/test_sessions.py tests/service/test_units.py"
  [service/state/snapshot.py]="tests/service/test_snapshot.py"
  [service/state/redis_store.py]="tests/e2e/replicas/test_redis_store.py"
  [service/state/redis_lua.py]="tests/e2e/replicas/test_redis_store.py"
  [service/state/redis_codec.py]="tests/e2e/replicas/test_redis_store.py"
  [service/checks.py]="tests/service/test_errors.py tests/service/test_sessions.py tests/service/test_predict.py tests/service/test_lifetimes.py tests/service/test_units.py"
  [service/session_locks.py]="tests/service/test_session_locks.py tests/service/test_admission.py tests/service/test_exactly_once.py"
  [service/api/v2/sequences.py]="tests/service/v2"
)
CORE=(
  service/engine.py service/batching/batcher.py service/batching/assemble.py
  service/state/memory.py service/state/table.py service/state/slab.py service/state/codec.py
  service/state/snapshot.py service/state/redis_store.py service/state/redis_lua.py
  service/state/redis_codec.py service/checks.py service/session_locks.py
  service/api/v2/sequences.py
)
# Operators left out: shifts, powers, modulo, floor division and XOR as replacements (mostly
# incompetent mutants that crash at once), ==/< -> `is` (equivalent on small ints), and the
# variable inserter/replacer (random names; noise more than signal).
EXCLUDE='"core/ReplaceBinaryOperator_\\w+_(LShift|RShift|Pow|Mod|FloorDiv|BitXor)$",
  "core/ReplaceComparisonOperator_(Eq|NotEq|Lt|LtE|Gt|GtE)_(Is|IsNot)$",
  "core/VariableInserter", "core/VariableReplacer"'

modules=()
while [ $# -gt 0 ]; do
  case "$1" in
    --sample) SAMPLE=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) modules+=("$1"); shift ;;
  esac
done
[ ${#modules[@]} -gt 0 ] || modules=("${CORE[@]}")
[ -x "$BIN/cosmic-ray" ] || { echo "mutation.sh: install cosmic-ray: $BIN/pip install cosmic-ray" >&2; exit 2; }
for m in "${modules[@]}"; do
  [ -n "${TESTS[$m]:-}" ] || { echo "mutation.sh: no test selection for $m (add it to TESTS)" >&2; exit 2; }
  if [ -n "$(git status --porcelain -- "$m")" ]; then
    echo "mutation.sh: $m has uncommitted changes; commit or stash them first" >&2; exit 2
  fi
done
mkdir -p "$OUT"
current=""
restore() { if [ -n "$current" ]; then git checkout -q -- "$current"; fi; }
trap restore EXIT
trap 'exit 130' INT TERM

for m in "${modules[@]}"; do
  slug=${m//\//_}; slug=${slug%.py}
  cfg=$OUT/$slug.toml db=$OUT/$slug.sqlite
  cat >"$cfg" <<EOF
[cosmic-ray]
module-path = "$m"
timeout = $TIMEOUT
excluded-modules = []
test-command = "$PY -m pytest -x -q -p no:cacheprovider ${TESTS[$m]}"

[cosmic-ray.distributor]
name = "local"

[cosmic-ray.filters.operators-filter]
exclude-operators = [$EXCLUDE]
EOF
  echo "== $m: tests ${TESTS[$m]}"
  rm -f "$db"
  "$BIN/cosmic-ray" init "$cfg" "$db"
  "$BIN/cr-filter-operators" "$db" "$cfg"
  "$PY" - "$db" "$SAMPLE" <<'EOF'
import random, sys
from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import WorkerOutcome, WorkResult
path, sample = sys.argv[1], int(sys.argv[2])
with use_db(path, WorkDB.Mode.open) as db:
    pending = sorted(item.job_id for item in db.pending_work_items)
    if sample and sample < len(pending):
        keep = set(random.Random(19).sample(pending, sample))
        skip = WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output="not in --sample")
        db.set_multiple_results([j for j in pending if j not in keep], skip)
    print(f"{len(pending)} mutants after filtering; testing {sample or len(pending)}")
EOF
  current=$m
  "$BIN/cosmic-ray" baseline "$cfg" || { echo "mutation.sh: the tests fail unmutated: fix them first" >&2; exit 1; }
  "$BIN/cosmic-ray" exec "$cfg" "$db"
  git checkout -q -- "$m"  # cosmic-ray restores each mutant; this also covers a crash
  current=""
  "$PY" - "$db" "$m" "$OUT/summary.tsv" <<'EOF'
import datetime, sys
from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import TestOutcome, WorkerOutcome
path, module, summary = sys.argv[1:4]
killed, survived, other = 0, [], 0
with use_db(path, WorkDB.Mode.open) as db:
    for item, result in db.completed_work_items:
        if result.worker_outcome == WorkerOutcome.SKIPPED:
            continue
        if result.worker_outcome != WorkerOutcome.NORMAL:
            other += 1  # the worker itself failed: neither killed nor survived
        elif result.test_outcome == TestOutcome.SURVIVED:
            survived.append(item.mutations[0])
        else:  # killed, or incompetent (the mutant cannot even run): a test caught it
            killed += 1
tested = killed + len(survived)
rate = 100.0 * killed / tested if tested else 0.0
print(f"{module}: {tested} mutants tested, {killed} killed, {len(survived)} survived "
      f"({rate:.1f}% killed), {other} errored")
for m in survived:
    print(f"  survived: {module}:{m.start_pos[0]} {m.operator_name} #{m.occurrence}")
stamp = datetime.datetime.now().isoformat(timespec="seconds")
with open(summary, "a") as f:
    f.write(f"{stamp}\t{module}\t{tested}\t{killed}\t{len(survived)}\t{rate:.1f}\n")
EOF
done
