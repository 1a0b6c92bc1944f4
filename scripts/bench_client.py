"""`Session.stream` throughput on one session: window=1 against window=8, side by side.

One server (the shipped model, in-memory store) on a free loopback port; one session streams
one-timestep chunks with `max_steps=1` (no merging: each chunk is its own message, so the
figure is the pipelining alone). Rounds alternate between the windows; medians are reported.

    python scripts/bench_client.py --steps 3000 --rounds 3 [--record]

`--record` writes docs/bench_client.json and its section of docs/benchmarks.md.
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

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "scripts")]

from benchlib import stream_window  # noqa: E402

from scripts.launch import ServerProcess  # noqa: E402
from seqserve.client import Client  # noqa: E402


def steps_per_s(url: str, steps: int, window: int) -> float:
    chunks = list(315.0 + np.random.default_rng(0).normal(0, 1, (steps, 1, 1)))
    with Client(url) as client:
        session = client.create_session("co2")
        started = time.perf_counter()
        count = sum(1 for _ in session.stream(iter(chunks), max_steps=1, window=window))
        elapsed = time.perf_counter() - started
        session.delete()
    assert count == steps
    return steps / elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3000, help="one-timestep messages per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--windows", type=int, nargs="+", default=[1, 8])
    p.add_argument("--record", action="store_true", help="write docs/bench_client.json + .md")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as logs:
        server = ServerProcess.seqserve(None, Path(logs)).start()
        try:
            steps_per_s(server.url, 200, max(args.windows))  # warm-up
            rates: dict[int, list[float]] = {w: [] for w in args.windows}
            for _ in range(args.rounds):
                for window in args.windows:
                    rates[window].append(steps_per_s(server.url, args.steps, window))
        finally:
            server.stop()
    medians = {str(w): statistics.median(r) for w, r in rates.items()}
    first, last = str(args.windows[0]), str(args.windows[-1])
    figures = {
        "steps": args.steps,
        "rounds": args.rounds,
        "rates": medians,
        "first": first,
        "last": last,
        "ratio": medians[last] / medians[first],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python scripts/bench_client.py " + shlex.join(sys.argv[1:]),
    }
    print(json.dumps(figures))
    if args.record:
        path = REPO / "docs" / "bench_client.json"
        path.write_text(json.dumps(figures, indent=1) + "\n")
        stream_window.splice(REPO / "docs" / "benchmarks.md", path)


if __name__ == "__main__":
    main()
