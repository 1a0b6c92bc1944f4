"""`--workers N` side by side: v1 steps/s with 1 worker on the memory store (the baseline),
1 worker on Redis over a unix socket, and N workers (sessions in the supervisor's private
Redis), rounds interleaved.

    python scripts/bench_workers.py                 # 16 and 64 streams, 8 s runs, 3 rounds
    python scripts/bench_workers.py --workers 2 4 8 # a scaling curve on a bigger machine
    python scripts/bench_workers.py --smoke         # proves it runs end to end; no figures kept

Each round starts every setup fresh on the bundled model (in a rotated order), opens one
session per wrk connection, steps each once, then runs wrk (one step per request, no step
index). Server CPU counts the supervisor, its workers and the Redis the setup runs. Ratios
are medians of the rounds' ratios to the baseline of the same round. Writes
docs/bench_workers.json (with --smoke, only where --out says).
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from benchlib import wrk
from benchlib.client import Client
from launch import ServerProcess
from seqserve.service.private_redis import NOT_FOUND, PrivateRedis, find_binary

DOCS = Path(__file__).resolve().parents[1] / "docs"


@dataclass
class Setup:
    label: str
    env: dict[str, str]
    own_redis: bool = False  # a Redis of its own next to a single worker
    rows: dict[int, list[tuple[float, float, float]]] = field(default_factory=dict)


def setups(workers: list[int]) -> list[Setup]:
    found = [Setup("1 worker, memory store", {}), Setup("1 worker, Redis (unix)", {}, True)]
    found += [Setup(f"{n} workers, Redis (unix)", {"SEQSERVE_WORKERS": str(n)}) for n in workers]
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and of its live children."""
    total = 0.0
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.Error:  # exited meanwhile
            continue
        total += times.user + times.system
    return total


def measure(setup: Setup, log_dir: Path, streams: list[int], seconds: float) -> None:
    redis = PrivateRedis(_binary()).start() if setup.own_redis else None
    env = dict(setup.env, SEQSERVE_LIMITS__KEEP_ALIVE_S="60")
    if redis is not None:
        env.update(SEQSERVE_STATE_STORE="redis", SEQSERVE_REDIS_URL=redis.url)
    server = ServerProcess.seqserve(None, log_dir, **env).start()
    try:
        client = Client(server.url)
        for count in streams:
            new = {"model": "co2"}
            ids = [client.json("POST", "/v1/sessions", new, 201)["id"] for _ in range(count)]
            for sid in ids:  # first steps out of the way (a session's first step differs)
                client.json("POST", f"/v1/sessions/{sid}/steps", {"inputs": [[415.2]]})
            extra = redis.proc.pid if redis is not None and redis.proc is not None else None
            cpu = cpu_seconds(server.pid) + (cpu_seconds(extra) if extra else 0.0)
            result = wrk.run(server.url, ids, count, seconds)
            used = cpu_seconds(server.pid) + (cpu_seconds(extra) if extra else 0.0) - cpu
            if result.errors or result.non2xx:
                raise RuntimeError(
                    f"{setup.label}: {result.errors} errors, {result.non2xx} non-2xx"
                )
            per_step = 1e6 * used / max(result.requests, 1)
            setup.rows.setdefault(count, []).append((result.rps, per_step, result.p99_ms))
    finally:
        server.stop()
        if redis is not None:
            redis.stop()


def _binary() -> str:
    binary = find_binary()
    if binary is None:
        raise SystemExit(NOT_FOUND)
    return binary


def summary(all_setups: list[Setup], streams: list[int]) -> list[dict[str, Any]]:
    base = all_setups[0]
    table = []
    for count in streams:
        for setup in all_setups:
            rows = setup.rows[count]
            ratios = [r[0] / b[0] for r, b in zip(rows, base.rows[count], strict=True)]
            table.append(
                {
                    "setup": setup.label,
                    "streams": count,
                    "rps": statistics.median(r[0] for r in rows),
                    "cpu_us_per_step": statistics.median(r[1] for r in rows),
                    "p99_ms": statistics.median(r[2] for r in rows),
                    "ratio_to_baseline": statistics.median(ratios),
                    "rounds": [list(r) for r in rows],
                }
            )
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[2], help="N of each setup")
    parser.add_argument("--streams", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="4 streams, 1 s, 1 round")
    parser.add_argument("--out", type=Path, help="JSON figures (default docs/bench_workers.json)")
    args = parser.parse_args()
    if not wrk.available():
        parser.error("needs Debian's wrk (apt-get install wrk)")
    if args.smoke:
        args.streams, args.seconds, args.rounds = [4], 1.0, 1
    out = args.out or (
        Path(tempfile.mkdtemp()) / "bench_workers.json"
        if args.smoke
        else DOCS / "bench_workers.json"
    )
    log_dir = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    all_setups = setups(args.workers)
    for k in range(args.rounds):
        shift = k % len(all_setups)  # rotate the order: no setup always runs first or last
        for setup in all_setups[shift:] + all_setups[:shift]:
            measure(setup, log_dir, args.streams, args.seconds)
    table = summary(all_setups, args.streams)
    for row in table:
        print(
            f"{row['streams']:>3} streams | {row['setup']:<26} | {row['rps']:>8,.0f} steps/s "
            f"| {row['ratio_to_baseline']:.2f}x | {row['cpu_us_per_step']:>5.0f} µs CPU/step "
            f"| p99 {row['p99_ms']:.1f} ms"
        )
    record = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python scripts/bench_workers.py " + shlex.join(sys.argv[1:]),
        "machine": {"cores": psutil.cpu_count(), "cpu": platform.processor() or platform.machine()},
        "seconds": args.seconds,
        "rounds": args.rounds,
        "baseline": all_setups[0].label,
        "rows": table,
    }
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
