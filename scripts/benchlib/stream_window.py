"""The `Session.stream` window section of docs/benchmarks.md, from docs/bench_client.json
(written by `python scripts/bench_client.py --record`)."""

from __future__ import annotations

import json
from pathlib import Path

from benchlib import markdown as markdown_section

HEADING = "## Session.stream window (scripts/bench_client.py)"


def section(figures_path: Path) -> list[str]:
    lines = [HEADING, ""]
    if not figures_path.is_file():
        return [*lines, "Not recorded yet: run `python scripts/bench_client.py --record`."]
    f = json.loads(figures_path.read_text())
    lines += [
        f"One session streaming {f['steps']:,} one-timestep chunks with `max_steps=1` (each chunk "
        "its own message, so only the pipelining differs) to one server on loopback, the "
        f"shipped model; {f['rounds']} alternating rounds, medians; {f['date']} "
        f"(`{f['command']}`).",
        "",
        "| window | steps/s |",
        "|---|---|",
        *(f"| {w} | {rate:,.0f} |" for w, rate in f["rates"].items()),
        "",
        f"window={f['last']} / window={f['first']}: {f['ratio']:.2f}×. The server still steps "
        "one session's messages one at a time (in order, exactly once), so the window hides the "
        "client's and the network's share of each round trip, not the server's; client and "
        "server share the machine's cores.",
    ]
    return lines


def splice(markdown: Path, figures_path: Path) -> None:
    """Replace (or append) this section of an existing docs/benchmarks.md."""
    markdown_section.splice(markdown, HEADING, section(figures_path))
