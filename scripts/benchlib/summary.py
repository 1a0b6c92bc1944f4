"""Medians over repeated runs, ratios, and the verdicts against issue 4's targets."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

RAW_STATE_BYTES = 512  # h + c: 2 x 64 float32, the floor for memory per session


def median_point(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per key, the median over runs (keys with no numeric value are left out)."""
    out: dict[str, Any] = {"runs": len(runs)}
    for key in runs[0] if runs else []:
        values = [r[key] for r in runs if isinstance(r.get(key), int | float)]
        if values:
            out[key] = statistics.median(values)
    return out


def point(results: dict[str, Any], section: str, name: str, streams: int) -> dict[str, Any]:
    runs = results.get(section, {}).get(name, {}).get(str(streams), [])
    return median_point(runs) if runs else {}


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def paired_ratio(
    results: dict[str, Any], a: tuple[str, str], b: tuple[str, str], streams: int, key: str
) -> float | None:
    """Median over rounds of a/b for one figure, pairing round k of `a` with round k of `b`
    (taken minutes apart), so slow drifts in the machine's background load cancel; the
    ratio of medians where the round counts differ."""
    runs_a = results.get(a[0], {}).get(a[1], {}).get(str(streams), [])
    runs_b = results.get(b[0], {}).get(b[1], {}).get(str(streams), [])
    if runs_a and len(runs_a) == len(runs_b):
        pairs = [ratio(x.get(key), y.get(key)) for x, y in zip(runs_a, runs_b, strict=True)]
        good = [p for p in pairs if p is not None]
        return statistics.median(good) if good else None
    return ratio(point(results, *a, streams).get(key), point(results, *b, streams).get(key))


def fmt_ratio(r: float | None) -> str:
    return "—" if r is None else f"{r:.2f}×"


def fmt(v: float | None, unit: str = "", digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:,.{digits}f}{unit}"


@dataclass(frozen=True)
class Verdict:
    target: str
    measured: str
    met: bool | None  # None: not measured
    margin: str  # how far above or below the target
    why: str = ""  # a missed goal's own profile numbers (issue 13)


def _check(target: str, value: float | None, bound: float, at_least: bool, shown: str) -> Verdict:
    if value is None or math.isnan(value):
        return Verdict(target, "pending / not measured", None, "")
    met = value >= bound if at_least else value <= bound
    rel = value / bound
    if at_least:
        margin = f"{rel:.2f}× the target" if met else f"{(1 - rel) * 100:.0f}% short"
    else:
        margin = f"{(1 - rel) * 100:.0f}% under" if met else f"{rel:.2f}× the bound"
    return Verdict(target, shown, met, margin)


def verdicts(results: dict[str, Any]) -> list[Verdict]:
    seq = point(results, "http", "seqserve", 64)
    empty = point(results, "http", "empty", 64)
    naive = point(results, "http", "naive", 64)
    ws = point(results, "ws", "seqserve", 64)
    vs_floor = paired_ratio(results, ("http", "seqserve"), ("http", "empty"), 64, "rps")
    vs_naive = paired_ratio(results, ("http", "seqserve"), ("http", "naive"), 64, "rps")
    hist = {row["history"]: row for row in results.get("history", [])}
    h_ratio = None
    if 10 in hist and 10000 in hist:
        h_ratio = ratio(hist[10000]["stateful_p50_ms"], hist[10]["stateful_p50_ms"])
    rss = results.get("rss", {}).get("seqserve", {}).get("per_session")
    return [
        _check(
            "HTTP steps/s at 64 streams ≥ 0.8× the empty endpoint",
            vs_floor,
            0.8,
            True,
            f"{fmt(seq.get('rps'))}/s vs {fmt(empty.get('rps'))}/s = {fmt_ratio(vs_floor)}",
        ),
        _check(
            "HTTP steps/s at 64 streams ≥ 3× the naive baseline",
            vs_naive,
            3.0,
            True,
            f"{fmt(seq.get('rps'))}/s vs {fmt(naive.get('rps'))}/s = {fmt_ratio(vs_naive)}",
        ),
        _check(
            "mean batch ≥ 8 at 64 streams",
            seq.get("batch_mean"),
            8.0,
            True,
            fmt(seq.get("batch_mean"), digits=1),
        ),
        _check(
            "p99 ≤ 10 ms at 64 streams",
            seq.get("p99_ms"),
            10.0,
            False,
            fmt(seq.get("p99_ms"), " ms", 1),
        ),
        _check(
            "WebSocket ≥ 15,000 steps/s at 64 streams",
            ws.get("rps"),
            15000.0,
            True,
            f"{fmt(ws.get('rps'))}/s",
        ),
        _check(
            "p50 at history 10,000 ≤ 1.1× history 10",
            h_ratio,
            1.1,
            False,
            fmt_ratio(h_ratio),
        ),
        _check(
            "≤ 700 B RSS per idle session (1M sessions)",
            rss,
            700.0,
            False,
            f"{fmt(rss, ' B')} at {fmt(results.get('rss', {}).get('seqserve', {}).get('sessions'))}"
            " sessions",
        ),
    ]
