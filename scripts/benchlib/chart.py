"""The benchmark chart: throughput, latency, history length and memory, one PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchlib.summary import RAW_STATE_BYTES, point

COLORS = {"empty": "#999999", "seqserve": "#1f77b4", "naive": "#d62728", "ws": "#2ca02c"}
COLORS["mosec"] = "#ff7f0e"


def _series(results: dict[str, Any], section: str, name: str, key: str) -> tuple[list, list]:
    streams_key = "ws_streams" if section == "ws" else "streams"
    xs, ys = [], []
    for s in results.get("config", {}).get(streams_key, []):
        p = point(results, section, name, s)
        if p.get(key) is not None:
            xs.append(s)
            ys.append(p[key])
    return xs, ys


def draw(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    (thr, lat), (hist, mem) = axes
    lines = (
        ("http", "empty", "empty endpoint (floor)", "empty"),
        ("http", "seqserve", "seqserve HTTP", "seqserve"),
        ("http", "naive", "naive baseline HTTP", "naive"),
        ("http", "mosec", "Mosec + session dict HTTP", "mosec"),
        ("ws", "seqserve", "seqserve WebSocket", "ws"),
    )
    for section, name, label, color in lines:
        xs, ys = _series(results, section, name, "rps")
        if xs:
            thr.plot(xs, ys, "o-", label=label, color=COLORS[color])
        for key, style in (("p50_ms", "o-"), ("p99_ms", "x--")):
            xs, ys = _series(results, section, name, key)
            if xs:
                lat.plot(xs, ys, style, color=COLORS[color], label=f"{label} {key[:3]}")
    thr.axhline(15000, color=COLORS["ws"], lw=0.8, ls=":", label="WS target 15,000/s")
    thr.axhline(25000, color=COLORS["ws"], lw=0.8, ls="-.", label="WS goal 25,000/s (issue 13)")
    thr.set(xscale="log", xlabel="concurrent streams", ylabel="steps/s (median)")
    thr.set_title("Step throughput")
    lat.axhline(10, color="black", lw=0.8, ls=":", label="p99 target 10 ms")
    lat.set(xscale="log", yscale="log", xlabel="concurrent streams", ylabel="latency, ms")
    lat.set_title("Step latency")
    for ax in (thr, lat):
        ax.set_xticks(results.get("config", {}).get("streams", []))
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    rows = results.get("history", [])
    if rows:
        hs = [r["history"] for r in rows]
        hist.plot(hs, [r["stateful_p50_ms"] for r in rows], "o-", label="seqserve session step")
        hist.plot(hs, [r["stateless_p50_ms"] for r in rows], "s-", label="stateless recompute")
        hist.set(xscale="log", yscale="log", xlabel="steps of history", ylabel="p50 latency, ms")
        hist.legend(fontsize=8)
        hist.grid(alpha=0.3)
    hist.set_title("One new step vs history length")
    rss = results.get("rss", {})
    bars = [("raw h+c", RAW_STATE_BYTES, "#cccccc")]
    for key, label, color in (
        ("seqserve", "seqserve\n(in process)", COLORS["seqserve"]),
        ("http", "seqserve\n(HTTP)", COLORS["seqserve"]),
        ("naive", "naive", COLORS["naive"]),
    ):
        if rss.get(key, {}).get("per_session"):
            bars.append((label, rss[key]["per_session"], color))
    mem.bar([b[0] for b in bars], [b[1] for b in bars], color=[b[2] for b in bars])
    mem.axhline(700, color="black", lw=0.8, ls=":", label="target 700 B")
    mem.set(ylabel="bytes of RSS per idle session")
    mem.set_title("Memory per idle session")
    mem.legend(fontsize=8)
    fig.suptitle(results.get("meta", {}).get("title", "seqserve benchmarks"), fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
