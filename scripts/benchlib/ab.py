"""The "builds side by side" section of docs/benchmarks.md, from docs/bench_ab.json (written by
scripts/bench_ab.py --record); bench.py's doc and bench_ab.py both render it through here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HEADING = "## Builds side by side (scripts/bench_ab.py)"


def section(figures_path: Path) -> list[str]:
    if not figures_path.is_file():
        return []
    runs: list[dict[str, Any]] = json.loads(figures_path.read_text())
    lines = [
        HEADING,
        "",
        "Two installs of seqserve, each started fresh on the bundled model for every round, one "
        "session per wrk connection, one step per request; rounds alternate A/B and B/A, and the "
        "ratio is the median of the paired rounds. wrk shares the 2 cores with the server.",
    ]
    for run in runs:
        lines += [
            "",
            f"**A = {run['a']}, B = {run['b']}** ({run['date']}; `{run['command']}`)",
            "",
            "| streams | A steps/s | B steps/s | B / A | A µs CPU/step | B µs CPU/step "
            "| A p99 ms | B p99 ms |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in run["rows"]:
            lines.append(
                f"| {row['streams']} | {row['a_rps']:,.0f} | {row['b_rps']:,.0f} | "
                f"{row['ratio']:.2f}× | {row['a_cpu_us']:.0f} | {row['b_cpu_us']:.0f} | "
                f"{row['a_p99_ms']:.1f} | {row['b_p99_ms']:.1f} |"
            )
        if run.get("note"):
            lines += ["", run["note"]]
    return lines
