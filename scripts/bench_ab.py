"""Two builds of seqserve side by side: v1 steps/s and server CPU a step, rounds interleaved.

For "this change does not make it slower": point --a and --b at the Python of two installs
(e.g. a worktree of the old commit with its own venv) and compare medians of paired rounds.

    python scripts/bench_ab.py --a /work/old/.venv/bin/python --b .venv/bin/python \
        --a-label "5e96882" --b-label "main" --record

--record keeps the figures in docs/bench_ab.json and its section of docs/benchmarks.md.

Each round starts both servers fresh on the bundled model, opens one session per connection,
and runs wrk (Debian's `wrk`, one step per request, no step index) against A then B (B then A
on odd rounds). The load generator shares the machine's cores with the server.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import ab, markdown, wrk
from benchlib.client import Client
from launch import ServerProcess


def _server(python: str, log_dir: Path) -> ServerProcess:
    env = {"SEQSERVE_PORT": "{port}", "SEQSERVE_LOG_LEVEL": "warning"}
    return ServerProcess("seqserve", [python, "-m", "seqserve.service"], log_dir, env)


def _legacy(python: str, log_dir: Path) -> ServerProcess:
    """Builds from before the seqserve namespace ran as `python -m service`."""
    env = {"SEQSERVE_PORT": "{port}", "SEQSERVE_LOG_LEVEL": "warning"}
    return ServerProcess("seqserve-legacy", [python, "-m", "service"], log_dir, env)


def measure(server: ServerProcess, streams: int, seconds: float) -> tuple[float, float, float]:
    """(steps/s, server CPU µs a step, p99 ms) for `streams` connections, a session each."""
    client = Client(server.url)
    ids = [client.json("POST", "/v1/sessions", {"model": "co2"}, 201)["id"] for _ in range(streams)]
    for sid in ids:  # first steps out of the way (a session's first step differs)
        client.json("POST", f"/v1/sessions/{sid}/steps", {"inputs": [[415.2]]})
    cpu = server.cpu_seconds()
    result = wrk.run(server.url, ids, streams, seconds)
    used = server.cpu_seconds() - cpu
    return result.rps, 1e6 * used / max(result.requests, 1), result.p99_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", required=True, help="python of build A (the baseline)")
    parser.add_argument("--b", required=True, help="python of build B (the change)")
    parser.add_argument("--a-legacy", action="store_true", help="A runs as `python -m service`")
    parser.add_argument("--streams", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--a-label", default="A", help="what build A is (a commit, a branch)")
    parser.add_argument("--b-label", default="B", help="what build B is")
    parser.add_argument("--note", default="", help="a sentence recorded under the table")
    parser.add_argument("--record", action="store_true", help="write docs/bench_ab.json + doc")
    args = parser.parse_args()
    if not wrk.available():
        parser.error("needs Debian's wrk (apt-get install wrk)")
    log_dir = Path(tempfile.mkdtemp(prefix="bench-ab-"))
    make_a = _legacy if args.a_legacy else _server
    table: list[dict[str, Any]] = []
    for streams in args.streams:
        rows: dict[str, list[tuple[float, float, float]]] = {"A": [], "B": []}
        for k in range(args.rounds):
            order = [("A", args.a, make_a), ("B", args.b, _server)]
            for name, python, make in order if k % 2 == 0 else order[::-1]:
                server = make(python, log_dir).start()
                try:
                    rows[name].append(measure(server, streams, args.seconds))
                finally:
                    server.stop()
        rps = {n: statistics.median(r[0] for r in rows[n]) for n in rows}
        cpu = {n: statistics.median(r[1] for r in rows[n]) for n in rows}
        p99 = {n: statistics.median(r[2] for r in rows[n]) for n in rows}
        paired = statistics.median(b[0] / a[0] for a, b in zip(rows["A"], rows["B"], strict=True))
        print(
            f"{streams} streams: A {rps['A']:,.0f} steps/s ({cpu['A']:.0f} µs CPU/step, "
            f"p99 {p99['A']:.1f} ms) | B {rps['B']:,.0f} steps/s ({cpu['B']:.0f} µs CPU/step, "
            f"p99 {p99['B']:.1f} ms) | B/A steps/s, median of paired rounds: {paired:.2f}x"
        )
        table.append(
            {
                "streams": streams,
                "a_rps": rps["A"],
                "b_rps": rps["B"],
                "ratio": paired,
                "a_cpu_us": cpu["A"],
                "b_cpu_us": cpu["B"],
                "a_p99_ms": p99["A"],
                "b_p99_ms": p99["B"],
            }
        )
    if args.record:
        _record(args, table)
    return 0


def _record(args: argparse.Namespace, table: list[dict[str, Any]]) -> None:
    docs = Path(__file__).resolve().parents[1] / "docs"
    path = docs / "bench_ab.json"
    runs = json.loads(path.read_text()) if path.is_file() else []
    runs = [r for r in runs if (r["a"], r["b"]) != (args.a_label, args.b_label)]
    runs.append(
        {
            "a": args.a_label,
            "b": args.b_label,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": "python scripts/bench_ab.py " + shlex.join(sys.argv[1:]),
            "rows": table,
            "note": args.note,
        }
    )
    path.write_text(json.dumps(runs, indent=1) + "\n")
    markdown.splice(docs / "benchmarks.md", ab.HEADING, ab.section(path))


if __name__ == "__main__":
    raise SystemExit(main())
