"""Every figure as a row: (section, figure, value, vs floor, vs naive); rendered as text or
Markdown. "Floor" is the empty endpoint at the same concurrency for HTTP and WebSocket
figures, the empty endpoint at one stream for single-request latency, and the raw 512 B of
h + c for memory; "naive" is the tutorial baseline at the same concurrency."""

from __future__ import annotations

from typing import Any

from benchlib.summary import RAW_STATE_BYTES, fmt, fmt_ratio, paired_ratio, point, ratio

Row = tuple[str, str, str, str, str]
HEADER: Row = ("section", "figure", "value", "vs floor", "vs naive")
EMPTY, NAIVE = ("http", "empty"), ("http", "naive")


def _floor_rows(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for f in results.get("floor_ort", []):
        rows.append(
            (
                "floor",
                f"ONNX Runtime step, batch {f['batch']}, in process",
                f"{f['us']:.1f} µs/call = {f['steps_per_s']:,.0f} steps/s "
                f"(best round {f.get('best_us', f['us']):.1f} µs)",
                "",
                "",
            )
        )
    for streams in results.get("config", {}).get("streams", []):
        e = point(results, "http", "empty", streams)
        if e:
            rows.append(
                (
                    "floor",
                    f"empty endpoint, {streams} stream{'s' if streams > 1 else ''}",
                    f"{fmt(e['rps'])}/s, p50 {fmt(e['p50_ms'], ' ms', 2)}, "
                    f"p99 {fmt(e['p99_ms'], ' ms', 2)}",
                    "1.00×",
                    "",
                )
            )
    return rows


def _load_rows(results: dict[str, Any], section: str, name: str, label: str) -> list[Row]:
    rows: list[Row] = []
    streams_key = {"ws": "ws_streams", "grpc": "grpc_streams"}.get(section, "streams")
    for streams in results.get("config", {}).get(streams_key, []):
        p = point(results, section, name, streams)
        if not p:
            continue
        n = point(results, "http", "naive", streams) if name != "naive" else {}
        me = (section, name)
        rows.append(
            (
                label,
                f"{streams} stream{'s' if streams > 1 else ''}: steps/s",
                f"{fmt(p['rps'])}/s",
                fmt_ratio(paired_ratio(results, me, EMPTY, streams, "rps")),
                fmt_ratio(paired_ratio(results, me, NAIVE, streams, "rps") if n else None),
            )
        )
        for key, what in (("p50_ms", "p50"), ("p99_ms", "p99")):
            rows.append(
                (
                    label,
                    f"{streams} stream{'s' if streams > 1 else ''}: {what} latency",
                    fmt(p.get(key), " ms", 2),
                    fmt_ratio(paired_ratio(results, me, EMPTY, streams, key)),
                    fmt_ratio(paired_ratio(results, me, NAIVE, streams, key) if n else None),
                )
            )
        if "batch_mean" in p:
            rows.append(
                (
                    label,
                    f"{streams} stream{'s' if streams > 1 else ''}: mean batch",
                    fmt(p["batch_mean"], "", 1),
                    "",
                    "",
                )
            )
    return rows


def _history_rows(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    e1 = point(results, "http", "empty", 1)
    hist = results.get("history", [])
    base = hist[0]["stateful_p50_ms"] if hist else None
    for h in hist:
        rows.append(
            (
                "history",
                f"history {h['history']:,}: step p50 (× history {hist[0]['history']})",
                f"{h['stateful_p50_ms']:.2f} ms ({fmt_ratio(ratio(h['stateful_p50_ms'], base))})",
                fmt_ratio(ratio(h["stateful_p50_ms"], e1.get("p50_ms"))),
                "",
            )
        )
        rows.append(
            (
                "history",
                f"history {h['history']:,}: recompute p50 (× step)",
                f"{h['stateless_p50_ms']:.2f} ms "
                f"({fmt_ratio(ratio(h['stateless_p50_ms'], h['stateful_p50_ms']))})",
                fmt_ratio(ratio(h["stateless_p50_ms"], e1.get("p50_ms"))),
                "",
            )
        )
    return rows


def _rss_rows(results: dict[str, Any]) -> list[Row]:
    rss = results.get("rss", {})
    naive = rss.get("naive", {}).get("per_session")
    rows: list[Row] = []
    for key, label in (
        ("seqserve", "seqserve in process"),
        ("http", "seqserve over HTTP"),
        ("naive", "naive, torch tensors"),
    ):
        r = rss.get(key)
        if not r or r.get("per_session") is None:
            continue
        per = r["per_session"]
        rows.append(
            (
                "memory",
                f"RSS per idle session: {label} ({r['sessions']:,})",
                f"{per:,.0f} B",
                fmt_ratio(per / RAW_STATE_BYTES),
                fmt_ratio(ratio(per, naive)) if key != "naive" else "1.00×",
            )
        )
    return rows


def rows(results: dict[str, Any]) -> list[Row]:
    ws = results.get("ws", {})
    out = _floor_rows(results)
    out += _load_rows(results, "http", "seqserve", "seqserve HTTP")
    out += _load_rows(results, "http", "mosec", "Mosec + session dict HTTP")
    if ws.get("status") == "ok":
        out += _load_rows(results, "ws", "seqserve", "seqserve WS")
    elif ws:
        out.append(("seqserve WS", "steps/s", f"pending: {ws.get('reason', '')}"[:120], "", ""))
    grpc = results.get("grpc", {})
    if grpc.get("status") == "ok":
        out += _load_rows(results, "grpc", "seqserve", "seqserve gRPC stream")
    elif grpc:
        out.append(
            ("seqserve gRPC stream", "steps/s", f"pending: {grpc.get('reason', '')}", "", "")
        )
    out += _load_rows(results, "http", "naive", "naive HTTP")
    out += _history_rows(results)
    out += _rss_rows(results)
    return out


def text(table: list[Row]) -> str:
    all_rows = [HEADER, *table]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in all_rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def markdown(table: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in table]
    return "\n".join(lines)
