"""The "server CPU per step, in process" section of docs/benchmarks.md, from
docs/bench_path.json (written by scripts/bench_path.py --record); bench.py's doc and
bench_path.py both render it through here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
