"""Mutation testing of the serving core: parallel, coverage-guided, the checkout never touched.

Each mutant (a cosmic-ray operator applied once: a flipped comparison, a swapped operator, a
changed number, a removed decorator or exception handler, ...) runs only the tests that
executed its line, in a worker's own link tree, and counts as killed when they fail (an import
or collection error too: an incompetent mutant), or when they hang past the per-mutant timeout
(also "killed"; the report says "timeout"). Not in CI; see docs/testing.md.

    pip install cosmic-ray coverage              # once (enumeration; coverage contexts)
    python scripts/mutation.py --list            # mutants per module; writes the plan
    python scripts/mutation.py --modules service/session_locks.py
    python scripts/mutation.py --modules memory.py --sample 20 --jobs 2
    python scripts/mutation.py --jobs 16 --markdown build/mutation/report.md   # the whole core
    python scripts/mutation.py --from-report build/mutation/report.json  # re-run survivors
    python scripts/mutation.py --summarize a.json b.json --markdown -    # merge shard reports

On a machine with only a source tree and the dependencies' wheels unpacked on PYTHONPATH (no
`pip install -e .`, no cosmic-ray, no git): write the plan here with --list, carry
build/mutation/mutants.json along, and there run

    PYTHONPATH=/wheels python3 scripts/mutation.py --plan build/mutation/mutants.json \\
        --jobs 16 --shard 1/1 --markdown build/mutation/report.md

(only pytest and coverage are needed there). The first phase runs the test pool once under
coverage with one context per test (parallel, one test file per run; cached in build/mutation
while no source or test changes) to map lines to tests; then every worker is a fork server
(scripts/mutation_worker.py) whose tree build/mutation/w<i>/seqserve/ mirrors the package with
symlinks and holds the mutated module as a real file; PYTHONPATH puts that tree first (and
PYTHONSAFEPATH keeps the checkout's own seqserve/ off the path), so the editable install's
finder never gets asked. Results: build/mutation/report.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import queue
import random
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from mutation_mutants import Mutant, digest, enclosing_functions, enumerate_module, statement_lines

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "mutation"
WORKER = ROOT / "scripts" / "mutation_worker.py"
CORE = [
    "service/engine.py",
    "service/batching/batcher.py",
    "service/batching/assemble.py",
    "service/state/memory.py",
    "service/state/table.py",
    "service/state/slab.py",
    "service/state/codec.py",
    "service/state/snapshot.py",
    "service/state/packing.py",
    "service/state/redis_store.py",
    "service/state/redis_lua.py",
    "service/state/redis_codec.py",
    "service/state/redis_reads.py",
    "service/state/redis_route.py",
    "service/state/redis_keys.py",
    "service/checks.py",
    "service/session_locks.py",
    "service/api/v2/sequences.py",
]
# The tests run under coverage to map lines to tests: every in-process test (the Redis ones
# start a real redis-server and talk to it in-process), no process-per-test e2e suites.
POOL = [
    "tests/service",
    "tests/e2e/replicas/test_redis_store.py",
    "tests/e2e/replicas/test_store_contract.py",
    "tests/e2e/cluster/test_cluster_store.py",  # in-process store on a real cluster
    "tests/e2e/cluster/test_mut_route.py",
]
# A line that only runs at import time (a module constant, a class attribute) is covered by no
# test in particular: its mutants run the module's own selection (mutation.sh's lists).
_REDIS = ["tests/e2e/replicas/test_redis_store.py", "tests/e2e/replicas/test_store_contract.py"]
_REDIS += ["tests/service/test_redis_extra.py", "tests/service/test_redis_keys.py"]
_REDIS += ["tests/e2e/cluster/test_cluster_store.py", "tests/e2e/cluster/test_mut_route.py"]
FALLBACK = {
    "service/batching/assemble.py": [
        "tests/service/test_units.py",
        "tests/service/test_batching.py",
        "tests/service/test_chunk_invariance.py",
    ],
    "service/state/memory.py": [
        "tests/service/test_auth.py",
        "tests/service/test_store_integrity.py",
        "tests/service/test_session_integrity.py",
        "tests/service/test_lifetimes.py",
        "tests/service/test_sessions.py",
        "tests/service/test_snapshot.py",
        "tests/service/test_exactly_once.py",
        "tests/service/test_units.py",
        "tests/e2e/replicas/test_store_contract.py",
    ],
    "service/state/snapshot.py": ["tests/service/test_snapshot.py"],
    "service/checks.py": [
        "tests/service/test_errors.py",
        "tests/service/test_sessions.py",
        "tests/service/test_predict.py",
        "tests/service/test_lifetimes.py",
        "tests/service/test_units.py",
    ],
    "service/session_locks.py": [
        "tests/service/test_session_locks.py",
        "tests/service/test_admission.py",
        "tests/service/test_exactly_once.py",
    ],
    "service/api/v2/sequences.py": ["tests/service/v2"],
    **{m: _REDIS for m in CORE if "/redis_" in m or m.endswith("packing.py")},
}
# The workers import pytest plugins (anyio, hypothesis) before pytest does: pytest cannot
# rewrite their asserts, and warns, which filterwarnings=error would make fatal.
PYTEST = ["-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
PYTEST += ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
PRELOAD = [
    "numpy",
    "onnxruntime",
    "fastapi",
    "fastapi.testclient",
    "starlette",
    "pydantic",
    "pydantic_settings",
    "httpx",
    "orjson",
    "prometheus_client",
    "uvicorn",
    "hypothesis",
    "pytest",
    "coverage",
]
KILLED = ("killed", "timeout")


def main() -> int:
    args = parse_args()
    if args.summarize:
        reports = [json.loads(Path(p).read_text()) for p in args.summarize]
        rows = merge_rows([m for r in reports for m in r["mutants"]])
        print_summary(rows)
        meta = {**reports[0]["meta"], "shard": f"merged from {len(reports)} reports"}
        meta["seconds"] = max(r["meta"]["seconds"] for r in reports)  # shards run side by side
        write_markdown(args.markdown, rows, meta)
        return 0
    modules = pick_modules(args.modules)
    mutants, sources = load_mutants(args, modules)
    if args.list:
        return 0
    mutants = select_mutants(args, mutants)
    if not mutants:
        print("mutation.py: no mutants selected", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with Workers(args.jobs, sources) as workers:
        cov = coverage_map(workers, args.fresh_coverage)
        cov_seconds = time.monotonic() - started
        workers.preload(cov["modules"])
        (OUT / "preload.json").write_text(json.dumps(cov["modules"]))
        stop_at = started + args.deadline if args.deadline else None
        rows = run_mutants(workers, mutants, sources, cov, args.timeout, stop_at)
    meta = {
        "date": datetime.date.today().isoformat(),
        "python": sys.version.split()[0],
        "jobs": args.jobs,
        "shard": args.shard,
        "modules": sorted({m.module for m in mutants}),
        "sample": args.sample,
        "coverage_seconds": round(cov_seconds, 1),
        "seconds": round(time.monotonic() - started, 1),
        "baseline_failures": sorted(t for t, v in cov["tests"].items() if v[0] == "failed"),
    }
    report = Path(args.report)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps({"meta": meta, "mutants": rows}, indent=1))
    print_summary(rows)
    print(
        f"\n{len(rows)} mutants in {meta['seconds']:.0f} s with {args.jobs} jobs "
        f"(coverage map {cov_seconds:.0f} s); report: {report}"
    )
    if meta["baseline_failures"]:
        print(f"tests failing unmutated (never selected): {meta['baseline_failures']}")
    write_markdown(args.markdown, rows, meta)
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--modules", nargs="+", help="modules to mutate (default: the serving core)")
    add("--jobs", type=int, default=os.cpu_count() or 1, help="workers (default: cores)")
    add("--sample", type=int, default=0, help="N mutants per module, fixed seed")
    add("--shard", default="1/1", help="i/n: this machine's share of the mutants")
    add("--only-ids", default="", help="comma-separated mutant ids to run")
    add("--from-report", help="re-run the mutants a report.json did not kill")
    add("--timeout", type=float, help="seconds per mutant (default: from the baseline)")
    add(
        "--deadline",
        type=float,
        help="seconds from the start after which no further mutant starts (a borrowed machine's "
        "time limit); mutants then run in a seeded random order, so those run are a fair "
        "sample, and the rest are reported 'not-run'",
    )
    add("--plan", help="run the mutants of this plan file (no cosmic-ray needed)")
    add("--list", action="store_true", help="count mutants per module, write the plan, stop")
    add("--report", default=str(OUT / "report.json"))
    add("--markdown", help="also write the summary as Markdown to this file (- for stdout)")
    add("--fresh-coverage", action="store_true", help="ignore the cached coverage map")
    add(
        "--summarize",
        nargs="+",
        metavar="REPORT",
        help="merge shards or re-runs (a kill in any stands) and print, run nothing",
    )
    return parser.parse_args()


def pick_modules(names: list[str] | None) -> list[str]:
    if not names:
        return CORE
    picked = []
    for name in names:
        found = [m for m in CORE if m == name or m.endswith("/" + name)]
        if not found and (ROOT / name).is_file() and name.startswith("service/"):
            found = [name]
        if len(found) != 1:
            sys.exit(f"mutation.py: {name!r} names {len(found)} modules of the core")
        picked += found
    return picked


def load_mutants(args: argparse.Namespace, modules: list[str]) -> tuple[list[Mutant], dict]:
    """The modules' mutants: from the plan file where it was made from the same source, else
    enumerated (with cosmic-ray, a process per module) and saved to the plan."""
    sources = {m: (ROOT / m).read_text() for m in modules}
    path = Path(args.plan) if args.plan else OUT / "mutants.json"
    plan = json.loads(path.read_text()) if path.exists() else {"digests": {}, "mutants": []}
    stale = [m for m in modules if plan["digests"].get(m) != digest(sources[m])]
    if stale and args.plan:
        sys.exit(f"mutation.py: {path} was made from other sources of {stale}")
    if stale:
        try:
            import cosmic_ray  # noqa: F401
        except ImportError:
            sys.exit("mutation.py: pip install cosmic-ray (or run a saved --plan)")
        with ProcessPoolExecutor(min(args.jobs, len(stale))) as pool:
            found = list(pool.map(enumerate_module, [ROOT] * len(stale), stale))
        rows = [r for r in plan["mutants"] if r["module"] not in stale]
        for module, (mutants, skipped) in zip(stale, found, strict=True):
            plan["digests"][module] = digest(sources[module])
            plan.setdefault("skipped", {})[module] = skipped
            rows += [vars(m) for m in mutants]
        plan["mutants"] = rows
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(plan))
    mutants = [Mutant(**row) for row in plan["mutants"] if row["module"] in modules]
    if args.list:
        for module in modules:
            count = sum(1 for m in mutants if m.module == module)
            skipped = Counter(plan.get("skipped", {}).get(module, {}))
            why = ", ".join(f"{n} {k}" for k, n in skipped.most_common()) or "none"
            print(f"{module:34} {count:5} mutants   (skipped: {why})")
        print(f"{'total':34} {len(mutants):5} mutants; plan: {path}")
    return mutants, sources


def select_mutants(args: argparse.Namespace, mutants: list[Mutant]) -> list[Mutant]:
    wanted = {i for i in args.only_ids.split(",") if i}
    if args.from_report:
        rows = json.loads(Path(args.from_report).read_text())["mutants"]
        wanted |= {r["id"] for r in rows if r["outcome"] not in KILLED}
    if wanted:
        by_id = {m.id: m for m in mutants}
        missing = sorted(wanted - by_id.keys())
        if missing:
            print(f"mutation.py: no such mutant now (source changed?): {missing}", file=sys.stderr)
        mutants = [m for m in mutants if m.id in wanted]
    if args.sample:
        picked = []
        for module in sorted({m.module for m in mutants}):
            own = [m for m in mutants if m.module == module]
            picked += random.Random(19).sample(own, min(args.sample, len(own)))
        mutants = picked
    mutants.sort(key=lambda m: (m.module, m.line, m.operator, m.occurrence))
    index, count = (int(x) for x in args.shard.split("/"))
    return mutants[index - 1 :: count]


class Workers:
    """N fork-server processes, each with its own link tree of the package."""

    def __init__(self, jobs: int, sources: dict[str, str]) -> None:
        self.jobs = jobs
        self.procs: list[subprocess.Popen[str]] = []
        self.trees = [OUT / f"w{i}" for i in range(jobs)]
        self.modules = list(sources)

    def __enter__(self) -> Workers:
        for tree in self.trees:
            build_tree(tree)
            env = {
                **os.environ,
                "PYTHONPATH": os.pathsep.join(
                    [str(tree), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
                ),
                "PYTHONSAFEPATH": "1",
                # one thread per library: N workers already use every core
                "OMP_NUM_THREADS": "1",
                "OPENBLAS_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1",
            }
            proc = subprocess.Popen(
                [sys.executable, str(WORKER), str(tree)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=open(tree / "worker.log", "w"),  # noqa: SIM115 - the worker's lifetime
                cwd=tree / "run",
                env=env,
                text=True,
            )
            self.procs.append(proc)
        seen = OUT / "preload.json"  # what the tests imported last time: preload it all
        self.preload(PRELOAD + (json.loads(seen.read_text()) if seen.exists() else []))
        self.check_trees()
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.stdin:
                proc.stdin.close()
            proc.wait(timeout=60)

    def call(self, i: int, job: dict[str, Any]) -> dict[str, Any]:
        proc = self.procs[i]
        assert proc.stdin
        assert proc.stdout
        proc.stdin.write(json.dumps(job) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {i} died; see {self.trees[i] / 'worker.log'}")
        return dict(json.loads(line))

    def preload(self, modules: list[str]) -> None:
        self.map([{"op": "preload", "modules": modules}] * self.jobs, each_worker=True)

    def check_trees(self) -> None:
        """Every worker must import the modules under test from its own tree, not from the
        checkout (the editable install) nor any installed seqserve."""
        jobs = [
            {"op": "where", "modules": self.modules, "log": str(t / "where.json")}
            for t in self.trees
        ]
        for tree, reply in zip(self.trees, self.map(jobs, each_worker=True), strict=True):
            bad = {m: f for m, f in reply["files"].items() if not f.startswith(str(tree))}
            if reply["rc"] != 0 or bad or not reply["files"]:
                sys.exit(f"mutation.py: {tree} does not shadow seqserve: {reply} {bad}")

    def map(
        self,
        jobs: list[dict[str, Any]],
        each_worker: bool = False,
        done: Any = None,
        stop_at: float | None = None,
    ) -> list:
        """Runs jobs on the workers (job k on worker k with each_worker); replies in order
        (None for a job not started before `stop_at`, a time.monotonic() value)."""
        replies: list[Any] = [None] * len(jobs)
        todo: queue.Queue[int] = queue.Queue()
        for k in range(len(jobs)):
            todo.put(k)

        def serve(i: int) -> None:
            while True:
                if each_worker:
                    k = i
                else:
                    if stop_at is not None and time.monotonic() >= stop_at:
                        return
                    try:
                        k = todo.get_nowait()
                    except queue.Empty:
                        return
                job = dict(jobs[k])
                job.setdefault("args", [])
                job["args"] = [*job["args"], f"--basetemp={self.trees[i] / 'tmp'}"]
                job["log"] = job.get("log") or str(self.trees[i] / "run.log")
                replies[k] = self.call(i, job)
                if done:
                    done(k, replies[k])
                if each_worker:
                    return

        threads = [threading.Thread(target=serve, args=(i,)) for i in range(self.jobs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return replies


def build_tree(tree: Path) -> None:
    """TREE/seqserve mirrors the installed package (seqserve/, service/ as seqserve/service,
    model/ as seqserve/model) with real folders and symlinked files, so that one file can be
    swapped for a mutant; folders without Python files are linked whole."""
    shutil.rmtree(tree, ignore_errors=True)
    (tree / "run").mkdir(parents=True)
    package = tree / "seqserve"
    package.mkdir()
    for entry in (ROOT / "seqserve").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    (package / "model").symlink_to(ROOT / "model")
    for folder, dirs, files in os.walk(ROOT / "service"):
        here = package / "service" / Path(folder).relative_to(ROOT / "service")
        here.mkdir(exist_ok=True)
        for name in list(dirs):
            if name == "__pycache__" or not any((Path(folder) / name).rglob("*.py")):
                dirs.remove(name)
                if name != "__pycache__":
                    (here / name).symlink_to(Path(folder) / name)
        for name in files:
            (here / name).symlink_to(Path(folder) / name)


def pool_files() -> list[str]:
    files = []
    for entry in POOL:
        path = ROOT / entry
        found = sorted(path.rglob("test_*.py")) if path.is_dir() else [path]
        files += [str(p.relative_to(ROOT)) for p in found]
    return files


def cache_key(files: list[str]) -> str:
    hashed = hashlib.sha256(sys.version.encode())
    for folder in ("service", "tests", "seqserve"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            hashed.update(str(path.relative_to(ROOT)).encode() + path.read_bytes())
    for name in ("pyproject.toml", "scripts/launch.py", "scripts/mutation_worker.py", *files):
        hashed.update((ROOT / name).read_bytes())
    return hashed.hexdigest()


def coverage_map(workers: Workers, fresh: bool) -> dict[str, Any]:
    """{"lines": {module: {line: [test]}}, "import": {module: [line]}, "tests": {test:
    (outcome, seconds, order)}, "modules": [...]}: from one coverage run per test file."""
    files = pool_files()
    key = cache_key(files)
    cache = OUT / "coverage-map.json"
    if not fresh and cache.exists():
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            print(f"coverage map: cached ({cache})")
            return dict(cached)
    covdir = OUT / "coverage"
    shutil.rmtree(covdir, ignore_errors=True)
    covdir.mkdir(parents=True)
    jobs = []
    for k, name in enumerate(files):
        jobs.append(
            {
                "op": "run",
                "id": name,
                "args": [*PYTEST, *pytest_root(), str(ROOT / name)],
                "coverage": str(covdir / f"{k}.cov"),
                "record": str(covdir / f"{k}.json"),
                "log": str(covdir / f"{k}.log"),
                "timeout": 1800,
            }
        )
    print(f"coverage map: {len(files)} test files under coverage, {workers.jobs} at a time")
    # the slow files first (the e2e ones, then the biggest), so that no one runs alone at the end
    order = sorted(range(len(files)), key=lambda k: -(ROOT / files[k]).stat().st_size)
    replies = workers.map([jobs[k] for k in order], done=coverage_progress(len(files)))
    result = read_coverage(covdir, [files[k] for k in order], order, replies)
    result["key"] = key
    if not result.pop("incomplete"):
        cache.write_text(json.dumps(result))
    return result


def coverage_progress(total: int) -> Any:
    counter = iter(range(1, total + 1))
    lock = threading.Lock()

    def done(k: int, reply: dict[str, Any]) -> None:
        with lock:
            n = next(counter)
        note = "" if reply["rc"] in (0, 5) else f"  rc={reply['rc']} (failing tests excluded)"
        print(f"  [{n}/{total}] {reply['id']} {reply['seconds']:.0f} s{note}", flush=True)

    return done


def pytest_root() -> list[str]:
    return ["-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT)]


def read_coverage(
    covdir: Path, files: list[str], order: list[int], replies: list[dict[str, Any]]
) -> dict[str, Any]:
    import coverage

    lines: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    imported: dict[str, set[int]] = defaultdict(set)
    tests: dict[str, tuple[str, float, int]] = {}
    modules: set[str] = set()
    incomplete = False
    for name, k, reply in zip(files, order, replies, strict=True):
        record = covdir / f"{k}.json"
        if not record.exists():
            print(f"coverage map: {name} recorded nothing (rc={reply['rc']}):\n{reply['tail']}")
            incomplete = True
            continue
        summary = json.loads(record.read_text())
        modules |= set(summary["modules"])
        for n, test in enumerate(summary["order"]):
            info = summary["tests"][test]
            tests[test] = (info["outcome"], round(info["seconds"], 3), k * 100000 + n)
        data = coverage.CoverageData(basename=str(covdir / f"{k}.cov"))
        data.read()
        for measured in data.measured_files():
            module = module_of(measured)
            if module is None:
                continue
            for line, contexts in data.contexts_by_lineno(measured).items():
                for context in contexts:
                    if context:
                        lines[module][line].add(context)
                    else:
                        imported[module].add(line)
    return {
        "lines": {m: {str(n): sorted(t) for n, t in ls.items()} for m, ls in lines.items()},
        "import": {m: sorted(ls) for m, ls in imported.items()},
        "tests": tests,
        "modules": sorted(modules),
        "incomplete": incomplete,
    }


def module_of(measured: str) -> str | None:
    """service/... for a file measured in a worker tree (or, resolved, in the checkout)."""
    path = Path(measured)
    if path.is_relative_to(ROOT / "service"):
        return str(path.relative_to(ROOT))
    parts = path.parts
    if "seqserve" in parts and "service" in parts:
        at = parts.index("service", parts.index("seqserve"))
        return "/".join(parts[at:])
    return None


def select_tests(mutant: Mutant, source: str, cov: dict[str, Any]) -> tuple[list[str], str]:
    """The tests to run for a mutant, fast files first, and how they were chosen."""
    covered = cov["lines"].get(mutant.module, {})
    candidates = statement_lines(source).get(mutant.line, {mutant.line})
    passed = {t for t, v in cov["tests"].items() if v[0] == "passed"}
    chosen = {t for c in candidates for t in covered.get(str(c), ())}
    how = "coverage"
    functions = sorted(enclosing_functions(source), key=lambda f: -f[3])
    outside = all(not any(b <= c <= e for _, b, e, _ in functions) for c in candidates)
    if outside or candidates & set(cov["import"].get(mutant.module, ())):
        # executed at import time: coverage credits the line to whichever test imported the
        # module first, so add the tests that use it: a def's header (default, decorator)
        # shows in the tests of its body; anything else in the module's own selection
        found: set[str] = set()
        for top, body, end, _ in functions:
            if top <= mutant.line < body:
                found = {t for n in range(body, end + 1) for t in covered.get(str(n), ())}
                how = "def header"
                break
        if not found:
            prefixes = tuple(FALLBACK.get(mutant.module, POOL))
            found = {t for t in passed if t.startswith(prefixes)}
            how = "import time"
        chosen |= found
    chosen &= passed
    by_file: dict[str, list[str]] = defaultdict(list)
    for test in chosen:
        by_file[test.split("::")[0]].append(test)
    files = sorted(by_file, key=lambda f: sum(cov["tests"][t][1] for t in by_file[f]))
    ordered = [t for f in files for t in sorted(by_file[f], key=lambda t: cov["tests"][t][2])]
    return ordered, how


def run_mutants(
    workers: Workers,
    mutants: list[Mutant],
    sources: dict[str, str],
    cov: dict[str, Any],
    timeout: float | None,
    stop_at: float | None = None,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    jobs, estimates = [], {}
    for mutant in mutants:
        tests, how = select_tests(mutant, sources[mutant.module], cov)
        row = {**mutant.public(), "selection": how, "tests": len(tests)}
        if not tests:
            rows.append({**row, "outcome": "not-covered", "seconds": 0.0})
            continue
        estimate = sum(cov["tests"][t][1] for t in tests) + len({t.split("::")[0] for t in tests})
        estimates[mutant.id] = estimate
        rows.append(row)
        args = [*PYTEST, "-x", *pytest_root(), *(str(ROOT / t) for t in tests)]
        jobs.append(
            {
                "op": "run",
                "id": mutant.id,
                "module": mutant.module,
                "text": mutant.apply(sources[mutant.module]),
                "args": args,
                # A hang is a kill. Each test gets 10 s plus 3 times its baseline (which ran
                # under coverage, itself slower); the whole run a limit on top of that.
                "budgets": {t: 10 + 3 * cov["tests"][t][1] for t in tests},
                "timeout": timeout or 60 + 2 * estimate,
            }
        )
    if stop_at is None:
        jobs.sort(key=lambda j: -estimates[j["id"]])  # longest first: no long tail at the end
    else:
        random.Random(19).shuffle(jobs)  # cut short by the deadline: what ran is a fair sample
    by_id = {row["id"]: row for row in rows}
    total, counter, lock = len(jobs), iter(range(1, len(jobs) + 1)), threading.Lock()
    print(f"{len(rows)} mutants: {len(rows) - total} not covered, {total} to run")

    def done(k: int, reply: dict[str, Any]) -> None:
        row = by_id[reply["id"]]
        row["seconds"] = reply["seconds"]
        row["outcome"] = outcome(reply)
        if row["outcome"] == "killed":
            row["killed_by"] = reply["failed"]
        elif row["outcome"] == "error":
            row["output"] = reply.get("error") or reply["tail"]
        with lock:
            n = next(counter)
            print(
                f"  [{n}/{total}] {row['outcome']:8} {row['id']} "
                f"({row['tests']} tests, {row['seconds']:.1f} s)",
                flush=True,
            )

    workers.map(jobs, done=done, stop_at=stop_at)
    for row in rows:
        row.setdefault("outcome", "not-run")
        row.setdefault("seconds", 0.0)
    return rows


def outcome(reply: dict[str, Any]) -> str:
    if reply.get("timed_out"):
        return "timeout"
    rc = reply["rc"]
    if rc == 0:
        return "survived"
    # 1 tests failed, 2 collection errors (an incompetent mutant), 3 internal error, 4 a
    # conftest that no longer imports: with the same tests passing unmutated, all the mutant's
    if rc in (1, 2, 3, 4):
        return "killed"
    return "error"  # 5: no tests ran; 98/99 or a signal: the worker's trouble, not a verdict


def tally(rows: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        for key in (row["module"], "total"):
            per[key][row["outcome"]] += 1
    return per


def rate(counts: Counter[str]) -> tuple[int, int, float]:
    killed = counts["killed"] + counts["timeout"]
    judged = killed + counts["survived"] + counts["not-covered"]
    return killed, judged, 100.0 * killed / judged if judged else 0.0


def merge_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per mutant: shards hold disjoint ids; a later run that judged a mutant (it has
    more tests) replaces an earlier row, except that a kill in any run stands."""
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        old = best.get(row["id"])
        kept = old is not None and (old["outcome"] in KILLED or row["outcome"] in UNJUDGED)
        if not kept:
            best[row["id"]] = row
    return list(best.values())


KILLED, UNJUDGED = ("killed", "timeout"), ("error", "not-run")


def print_summary(rows: list[dict[str, Any]]) -> None:
    head = f"{'module':34} {'mutants':>7} {'killed':>6} {'timeout':>7} {'survived':>8} "
    print("\n" + head + f"{'uncovered':>9} {'errors':>6} {'not run':>7} {'kill rate':>9}")
    for module, counts in sorted(tally(rows).items(), key=lambda kv: kv[0] == "total"):
        killed, judged, pct = rate(counts)
        print(
            f"{module:34} {sum(counts.values()):7} {killed:6} {counts['timeout']:7} "
            f"{counts['survived']:8} {counts['not-covered']:9} {counts['error']:6} "
            f"{counts['not-run']:7} {pct:8.1f}%"
        )
    survivors = [r for r in rows if r["outcome"] in ("survived", "not-covered")]
    if survivors:
        print("\nsurvivors:")
    for row in sorted(survivors, key=lambda r: (r["module"], r["line"])):
        change = " ".join(row["diff"])[:150]
        print(f"  {row['module']}:{row['line']} {row['operator']} [{row['outcome']}] {change}")
    for row in rows:
        if row["outcome"] == "error":
            print(f"\nerror: {row['id']}\n{row.get('output', '')[-1500:]}")


def write_markdown(path: str | None, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    if not path:
        return
    sample = f", a sample of {meta['sample']} per module" if meta["sample"] else ""
    out = [
        f"Run of {meta['date']} (Python {meta['python']}, {meta['jobs']} jobs, shard "
        f"{meta['shard']}{sample}, {meta['seconds']:.0f} s):",
        "",
        "| Module | Mutants | Killed (timeouts) | Survived | Not covered | Errors | Not run "
        "| Kill rate |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for module, counts in sorted(tally(rows).items(), key=lambda kv: kv[0] == "total"):
        killed, judged, pct = rate(counts)
        name = "**total**" if module == "total" else f"`{module}`"
        out.append(
            f"| {name} | {sum(counts.values())} | {killed} ({counts['timeout']}) | "
            f"{counts['survived']} | {counts['not-covered']} | {counts['error']} | "
            f"{counts['not-run']} | {pct:.1f}% |"
        )
    survivors = sorted(
        (r for r in rows if r["outcome"] in ("survived", "not-covered")),
        key=lambda r: (r["module"], r["line"]),
    )
    if survivors:
        out += ["", "Survivors:"]
    for row in survivors:
        change = " → ".join(f"`{d[1:]}`" for d in row["diff"][:2])
        note = " (no test runs this line)" if row["outcome"] == "not-covered" else ""
        out.append(f"- `{row['module']}:{row['line']}` {row['operator']}: {change}{note}")
    text = "\n".join(out) + "\n"
    if path == "-":
        print(text)
    else:
        Path(path).write_text(text)


if __name__ == "__main__":
    sys.exit(main())
