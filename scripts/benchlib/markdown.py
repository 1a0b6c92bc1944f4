"""Sections of docs/benchmarks.md that their own scripts record apart from the main bench."""

from __future__ import annotations

from pathlib import Path


def splice(markdown: Path, heading: str, lines: list[str]) -> None:
    """Replace the section that starts at `heading` (up to the next `## `), or append it."""
    text = markdown.read_text()
    before, found, after = text.partition(heading)
    rest = ""
    if found:
        tail = after.split("\n## ", 1)
        rest = "\n## " + tail[1] if len(tail) == 2 else ""
    else:
        before = text.rstrip() + "\n\n"
    markdown.write_text(before + "\n".join(lines) + "\n" + rest)
