"""Issue 13's goals, each with its bound, the measured ratio and a verdict; a missed one carries
its own profile numbers (server CPU a step, ONNX Runtime's share, batch, cores busy)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from benchlib.summary import Verdict, _check, fmt, fmt_ratio, paired_ratio, point, ratio

SEQ, EMPTY, MOSEC = ("http", "seqserve"), ("http", "empty"), ("http", "mosec")
RSS_SLACK = 1.05  # allocator noise between runs of the same build; more is a regression
HISTORY_FLAT = 1.1  # issue 4's bound for "flat": p50 at history 10,000 over history 10


def _profile(p: dict[str, Any], label: str) -> str:
    """One server's figures at one point, as the evidence line shows them."""
    if not p:
        return f"{label}: not measured"
    parts = [f"{fmt(p.get('server_cpu_us_per_step'))} µs server CPU a step"]
    parts.append(f"{fmt(p.get('server_cores'), '', 2)} cores busy")
    if p.get("ort_us_per_step") is not None:
        parts.append(f"ONNX Runtime {fmt(p['ort_us_per_step'], '', 1)} µs a step")
    if p.get("batch_mean") is not None:
        parts.append(f"mean batch {fmt(p['batch_mean'], '', 1)}")
    return f"{label}: " + ", ".join(parts)


def _http(results: dict[str, Any], name: str, streams: int) -> dict[str, Any]:
    return point(results, "http", name, streams)


def _vs_mosec(results: dict[str, Any], streams: int) -> Verdict:
    r = paired_ratio(results, SEQ, MOSEC, streams, "rps")
    seq, mosec = _http(results, "seqserve", streams), _http(results, "mosec", streams)
    shown = (
        f"{fmt(seq.get('rps'))}/s vs {fmt(mosec.get('rps'))}/s = {fmt_ratio(r)}; p50 "
        f"{fmt(seq.get('p50_ms'), '', 2)} vs {fmt(mosec.get('p50_ms'), '', 2)} ms, p99 "
        f"{fmt(seq.get('p99_ms'), '', 1)} vs {fmt(mosec.get('p99_ms'), '', 1)} ms"
    )
    v = _check(f"v1 HTTP steps/s at {streams} streams ≥ 1.0× Mosec + session dict", r, 1.0,
               True, shown)  # fmt: skip
    if r is None:
        reason = results.get("peers", {}).get("mosec", {}).get("reason", "")
        return Verdict(v.target, f"not measured{': ' + reason if reason else ''}", None, "")
    return _evidence(v, f"{_profile(seq, 'seqserve')}; {_profile(mosec, 'Mosec')}")


def _cpu(results: dict[str, Any], streams: int) -> Verdict:
    runs = results.get("cpu", {})
    seq = runs.get("seqserve", {}).get(str(streams), [])
    empty = runs.get("empty", {}).get(str(streams), [])
    target = f"server CPU a v1 step at {streams} streams ≤ the floor's + 30 µs (in process)"
    if not seq or not empty:
        return Verdict(target, "pending / not measured", None, "")
    cpu = statistics.median(r["cpu_us"] for r in seq)
    floor = statistics.median(r["cpu_us"] for r in empty)
    loop = statistics.median(r["loop_us"] for r in seq)
    shown = f"{cpu:.0f} µs vs the floor's {floor:.0f} µs: +{cpu - floor:.0f} µs"
    v = _check(target, cpu - floor, 30.0, False, shown)
    p = _http(results, "seqserve", streams)
    return _evidence(
        v,
        f"in process {cpu:.0f} µs a step ({loop:.0f} on the event-loop thread; best round "
        f"{min(r['cpu_us'] for r in seq):.0f}); under wrk {_profile(p, 'seqserve')}",
    )


def _p99(results: dict[str, Any], streams: int) -> Verdict:
    r = paired_ratio(results, SEQ, EMPTY, streams, "p99_ms")
    seq, empty = _http(results, "seqserve", streams), _http(results, "empty", streams)
    shown = (
        f"{fmt(seq.get('p99_ms'), ' ms', 1)} vs the floor's {fmt(empty.get('p99_ms'), ' ms', 1)}"
        f" = {fmt_ratio(r)}"
    )
    v = _check(f"p99 at {streams} streams ≤ 2× the floor's", r, 2.0, False, shown)
    return _evidence(v, f"{_profile(seq, 'seqserve')}; {_profile(empty, 'floor')}")


def _lone(results: dict[str, Any]) -> Verdict:
    r = paired_ratio(results, SEQ, EMPTY, 1, "p50_ms")
    seq, empty = _http(results, "seqserve", 1), _http(results, "empty", 1)
    shown = (
        f"{fmt(seq.get('p50_ms'), ' ms', 2)} vs the floor's {fmt(empty.get('p50_ms'), ' ms', 2)}"
        f" = {fmt_ratio(r)}"
    )
    v = _check("p50 of a lone stream ≤ 1.5× the floor's", r, 1.5, False, shown)
    return _evidence(v, f"{_profile(seq, 'seqserve')}; {_profile(empty, 'floor')}")


def _v2(results: dict[str, Any]) -> list[Verdict]:
    rows = results.get("extras", {}).get("bench_v2", {}).get("rows", [])
    if not rows:
        return [Verdict("V2 sequence steps ≥ 0.9× v1", "pending / not measured", None, "")]
    out = []
    for row in rows:
        shown = (
            f"{fmt(row['v2_steps_per_s'])}/s vs {fmt(row['v1_steps_per_s'])}/s = "
            f"{fmt_ratio(row['v2_over_v1'])}"
        )
        v = _check(f"V2 sequence steps at {row['streams']} streams ≥ 0.9× v1",
                   row["v2_over_v1"], 0.9, True, shown)  # fmt: skip
        out.append(_evidence(v, f"p99 V2 {row['v2_p99_ms']} ms, v1 {row['v1_p99_ms']} ms"))
    return out


def _ws(results: dict[str, Any]) -> Verdict:
    ws = point(results, "ws", "seqserve", 64)
    v = _check("WebSocket ≥ 25,000 steps/s at 64 streams", ws.get("rps"), 25000.0, True,
               f"{fmt(ws.get('rps'))}/s")  # fmt: skip
    return _evidence(v, _profile(ws, "seqserve WebSocket"))


def _predict(results: dict[str, Any]) -> Verdict:
    p = results.get("predict", {})
    target = "stateless binary V2 predict of [64, 100, F] ≥ 0.9× in-process ONNX Runtime"
    if "ratio" not in p:
        return Verdict(target, "pending / not measured", None, "")
    http = statistics.median(r["http"] for r in p["rounds"])
    ort = statistics.median(r["ort"] for r in p["rounds"])
    shown = f"{http:.1f} vs {ort:.1f} calls/s = {fmt_ratio(p['ratio'])}"
    v = _check(target, p["ratio"], 0.9, True, shown)
    per = (1 / http - 1 / ort) * 1e3 if http and ort else None
    return _evidence(v, f"{fmt(per, ' ms', 2)} a call beyond ONNX Runtime's {1e3 / ort:.2f} ms")


def _history(results: dict[str, Any]) -> Verdict:
    hist = {row["history"]: row for row in results.get("history", [])}
    target = "no regression: step p50 at history 10,000 over history 10"
    if 10 not in hist or 10000 not in hist:
        return Verdict(target, "pending / not measured", None, "")
    r = ratio(hist[10000]["stateful_p50_ms"], hist[10]["stateful_p50_ms"])
    before = results.get("baseline", {}).get("history_ratio")
    bound = max(HISTORY_FLAT, before or 0.0)
    shown = f"{fmt_ratio(r)} (before: {fmt_ratio(before)}; bound {fmt_ratio(bound)})"
    return _check(target, r, bound, False, shown)


def _rss(results: dict[str, Any]) -> Verdict:
    rss = results.get("rss", {}).get("seqserve", {}).get("per_session")
    before = results.get("baseline", {}).get("rss_per_session")
    bound = before * RSS_SLACK if before else 700.0
    shown = f"{fmt(rss, ' B')} (before: {fmt(before, ' B')}; bound {fmt(bound, ' B')})"
    return _check("no regression: RSS per idle session", rss, bound, False, shown)


def _evidence(v: Verdict, why: str) -> Verdict:
    """The verdict, with its profile numbers kept where it was missed."""
    return Verdict(v.target, v.measured, v.met, v.margin, why if v.met is False else "")


def goals(results: dict[str, Any]) -> list[Verdict]:
    return [
        _vs_mosec(results, 16),
        _vs_mosec(results, 64),
        _cpu(results, 16),
        _cpu(results, 64),
        _p99(results, 16),
        _p99(results, 64),
        _lone(results),
        *_v2(results),
        _ws(results),
        _predict(results),
        _history(results),
        _rss(results),
    ]


def baseline(previous: Path) -> dict[str, Any]:
    """What "no regression" compares with: the figures of the results file in docs/ before
    this run (its commit and date kept with them), or nothing if there is none."""
    if not previous.is_file():
        return {}
    old = json.loads(previous.read_text())
    hist = {row["history"]: row for row in old.get("history", [])}
    out: dict[str, Any] = {
        "from": f"{previous.name} of {old.get('meta', {}).get('date', '?')}, commit "
        f"{old.get('meta', {}).get('machine', {}).get('commit', '?')}",
        "rss_per_session": old.get("rss", {}).get("seqserve", {}).get("per_session"),
    }
    if 10 in hist and 10000 in hist:
        out["history_ratio"] = ratio(hist[10000]["stateful_p50_ms"], hist[10]["stateful_p50_ms"])
    return out
