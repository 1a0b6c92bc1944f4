"""The GPU section of docs/benchmarks.md, from docs/gpu_check.json (written by
scripts/gpu_check.sh); bench.py's doc and gpu_check.sh both render it through here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchlib import markdown as markdown_section

HEADING = "## GPU (scripts/gpu_check.sh)"


def section(figures_path: Path) -> list[str]:
    lines = [HEADING, ""]
    figures: dict[str, Any] = {}
    if figures_path.is_file():
        figures = json.loads(figures_path.read_text())
    if figures.get("mode") != "gpu":
        lines += [
            "GPU figures are still to be recorded: run `bash scripts/gpu_check.sh --record` on a "
            "machine with CUDA and `seqserve[gpu]` installed. The script checks the CUDA "
            "provider's outputs against the CPU run of the same model, then times batch sizes "
            "1-256 on both."
        ]
        if figures:
            lines += ["", f"Last run: CPU-only ({figures['note']}), {figures['date']}."]
        return lines
    lines += [
        f"{figures['device']}; onnxruntime-gpu {figures['onnxruntime']}; model "
        f"`{figures['model']}`, one timestep a sequence; {figures['date']}. Max |GPU - CPU| "
        f"over every batch size: {figures['max_abs_diff']:.2e} (bound {figures['tolerance']:g}).",
        "",
        "| batch | CPU µs/call | GPU µs/call | CPU steps/s | GPU steps/s | GPU / CPU |",
        "|---|---|---|---|---|---|",
    ]
    for row in figures["rows"]:
        lines.append(
            f"| {row['batch']} | {row['cpu_us']:,.1f} | {row['gpu_us']:,.1f} | "
            f"{row['cpu_steps_per_s']:,.0f} | {row['gpu_steps_per_s']:,.0f} | "
            f"{row['gpu_steps_per_s'] / row['cpu_steps_per_s']:.2f}× |"
        )
    return lines


def splice(markdown: Path, figures_path: Path) -> None:
    """Replace (or append) the GPU section of an existing docs/benchmarks.md."""
    markdown_section.splice(markdown, HEADING, section(figures_path))
