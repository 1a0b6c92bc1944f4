"""The "server CPU per step, in process" section of docs/benchmarks.md, from
docs/bench_path.json (written by scripts/bench_path.py --record); bench.py's doc and
bench_path.py both render it through here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parents[1] / "bench_path.py"
HEADING = "## Server CPU per step, in process (scripts/bench_path.py)"


def section(figures_path: Path) -> list[str]:
    if not figures_path.is_file():
        return []
    runs: list[dict[str, Any]] = json.loads(figures_path.read_text())
    lines = [
        HEADING,
        "",
        "The server's own CPU time per v1 step (all its threads), with no sockets and no load "
        "generator: the real stack (uvicorn's httptools protocol as `python -m seqserve.service` "
        "configures it, the middlewares, the fast lane, the engine, the batcher and its ONNX "
        "Runtime thread) driven through in-memory transports, each connection sending its next "
        "step as soon as its answer is written. The kernel's share (socket reads and writes) is "
        "left out. Other load on the machine only adds CPU time, so next to the median of the "
        "rounds is the best one.",
    ]
    for run in runs:
        lines += [
            "",
            f"**{run['title']}** ({run['date']}; `{run['command']}`)",
            "",
            "| " + " | ".join(run["header"]) + " |",
            "|" + "---|" * len(run["header"]),
        ]
        lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in run["rows"]]
        if run.get("note"):
            lines += ["", run["note"]]
    return lines


def measure(
    python: str, streams: int, steps: int, floor: bool = False, env: dict[str, str] | None = None
) -> dict[str, float]:
    """One round of bench_path.py's child: cpu_us, loop_us (a step) and steps_per_s, for
    seqserve or (`floor`) the empty endpoint, at `streams` connections."""
    argv = [python, str(SCRIPT), "--child", "--streams", str(streams), "--steps", str(steps)]
    out = subprocess.run(argv + (["--floor"] if floor else []), check=True, capture_output=True,
                         text=True, env={**os.environ, **(env or {})})  # fmt: skip
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def rounds(streams: list[int], steps: int, repeats: int, env: dict[str, str] | None = None
           ) -> dict[str, dict[str, list[dict[str, float]]]]:  # fmt: skip
    """{"seqserve" | "empty": {streams: [round, ...]}}, the two taking turns in each round
    (and the order flipping between rounds), as bench_path.py --floor runs them."""
    out: dict[str, dict[str, list[dict[str, float]]]] = {"seqserve": {}, "empty": {}}
    for k in range(repeats):
        for n in streams:
            order = ["seqserve", "empty"] if k % 2 == 0 else ["empty", "seqserve"]
            for name in order:
                run = measure(sys.executable, n, steps, name == "empty", env)
                out[name].setdefault(str(n), []).append(run)
    return out
