"""docs/benchmarks.md: the command, the machine, the load generators, verdicts, every figure."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from benchlib import ab, chart, gpu, path, stream_window, table
from benchlib.goals import goals
from benchlib.summary import RAW_STATE_BYTES, Verdict, fmt, point, ratio, verdicts

MARKS = {True: "met", False: "**missed**", None: "not measured"}


def verdict_lines(results: dict[str, Any]) -> list[str]:
    lines = []
    for title, found in (("issue 4", verdicts(results)), ("issue 13", goals(results))):
        lines.append(f"{title}:")
        for v in found:
            margin = f" ({v.margin})" if v.margin else ""
            lines.append(f"[{MARKS[v.met].strip('*'):>12}] {v.target}: {v.measured}{margin}")
            if v.why:
                lines.append(f"{'':15}why: {v.why}")
    return lines


def _table(found: list[Verdict]) -> list[str]:
    lines = ["| target | measured | verdict |", "|---|---|---|"]
    for v in found:
        margin = f" ({v.margin})" if v.margin else ""
        lines.append(f"| {v.target} | {v.measured} | {MARKS[v.met]}{margin} |")
    return lines


def _goals(results: dict[str, Any]) -> list[str]:
    """Issue 13's goals, and under the table each missed one's own profile numbers."""
    found = goals(results)
    base = results.get("baseline", {}).get("from")
    lines = [
        "## Goals (issue 13)",
        "",
        "One run, same machine: seqserve's ratios against Mosec with a session dict "
        "(`scripts/peers/mosec_server.py`, in its own venv under `build/peers/`), against the "
        "empty endpoint (the floor) at the same concurrency, and against in-process ONNX "
        "Runtime; the server CPU goal uses the in-process figure (`scripts/bench_path.py`'s "
        "measurement, no sockets)." + (f' "No regression" compares with {base}.' if base else ""),
        "",
        *_table(found),
    ]
    missed = [v for v in found if v.why]
    if missed:
        lines += ["", "Missed, with the profile numbers of the same points:", ""]
        lines += [f"- **{v.target}**: {v.why}." for v in missed]
    return lines


def _why(results: dict[str, Any]) -> list[str]:
    """Evidence for each verdict, from the server's own CPU use and /metrics."""
    notes = []
    seq, empty = point(results, "http", "seqserve", 64), point(results, "http", "empty", 64)
    naive = point(results, "http", "naive", 64)
    if seq and empty:
        cpu, floor_cpu = seq.get("server_cpu_us_per_step"), empty.get("server_cpu_us_per_step")
        ort = seq.get("ort_us_per_step")
        notes.append(
            f"**Where a step's time goes (64 streams).** The server process is single-threaded "
            f"Python on the event loop, so throughput is about 1 / (server CPU per request). "
            f"seqserve used {fmt(cpu)} µs of server CPU per step "
            f"({fmt(seq.get('server_cores'), '', 2)} cores busy); the empty endpoint "
            f"{fmt(floor_cpu)} µs ({fmt(empty.get('server_cores'), '', 2)} cores). ONNX Runtime "
            f"itself took {fmt(ort, '', 1)} µs per step (seqserve_ort_run_seconds over the "
            f"steps it ran), so about {fmt((cpu or 0) - (floor_cpu or 0) - (ort or 0))} µs per "
            f"step is seqserve's own request path beyond the bare stack (body parsing and "
            f"validation, session lookup and lock, state gather/scatter, batching, JSON)."
        )
        if (seq.get("server_cores") or 1) < 0.85:
            notes[-1] += (
                f" The server was busy only {seq['server_cores']:.2f} cores at 64 streams, so "
                "it also waits rather than computes part of the time (batch window, thread "
                "pool hand-offs): throughput is not purely CPU-bound there."
            )
    if seq.get("batch_mean") is not None:
        b = seq["batch_mean"]
        if b < 1.5:
            notes.append(
                f"**Batching.** The mean batch at 64 streams was {b:.2f}: steps of different "
                "sessions were not coalesced into shared ONNX Runtime calls in this build."
            )
        else:
            notes.append(
                f"**Batching.** The mean batch at 64 streams was {b:.1f} "
                f"({fmt(seq.get('ort_calls'))} ONNX Runtime calls in the median run)."
            )
    if seq.get("p99_ms") is not None and seq.get("rps"):
        little = 64 / seq["rps"] * 1e3
        notes.append(
            f"**Latency at 64 streams.** With 64 requests always in flight, Little's law ties "
            f"mean latency to throughput: 64 / {fmt(seq['rps'])} per s = {little:.1f} ms. A p99 "
            f"of 10 ms needs roughly {64 / 0.005:,.0f} steps/s or more (mean ≈ 5 ms); the p99 "
            f"measured was {seq['p99_ms']:.1f} ms."
        )
        if empty.get("rps"):
            notes[-1] += (
                f" The empty endpoint itself managed {fmt(empty['rps'])} requests/s at 64 "
                f"streams (mean {64 / empty['rps'] * 1e3:.1f} ms, p99 {empty['p99_ms']:.1f} ms),"
                " so on this machine the bound is "
                + ("below" if empty["p99_ms"] > 10 else "within")
                + " the reach of the bare stack under the same closed-loop load."
            )
    if naive:
        notes.append(
            f"**Naive baseline.** {fmt(naive.get('rps'))} steps/s at 64 streams, "
            f"{fmt(naive.get('server_cpu_us_per_step'))} µs of server CPU per step "
            f"({fmt(naive.get('server_cores'), '', 2)} cores)."
        )
    ws = point(results, "ws", "seqserve", 64)
    if ws:
        per = ws.get("server_cpu_us_per_step") or 0
        notes.append(
            f"**WebSocket.** {fmt(ws.get('rps'))} steps/s at 64 streams; seqserve used "
            f"{per:.0f} µs of server CPU a step ({ws.get('server_cores', 0):.2f} cores busy) and "
            f"the mean batch was {ws.get('batch_mean') or 0:.1f}. 15,000 steps/s on one event "
            f"loop leaves about {1e6 / 15000:.0f} µs of CPU a step."
        )
    hist = results.get("history", [])
    if hist:
        p50s = ", ".join(f"{h['history']:,} → {h['stateful_p50_ms']:.2f} ms" for h in hist)
        notes.append(
            f"**History.** Stateful step p50 by history length: {p50s}. A step touches only "
            "the session's state row, never its history; the lengths take turns in blocks of "
            "10 samples, so a background-load burst lands on all of them alike. Stateless "
            f"recompute at {hist[-1]['history']:,} steps took "
            f"{hist[-1]['stateless_p50_ms']:.1f} ms (p50)."
        )
    rss = results.get("rss", {}).get("seqserve")
    if rss:
        sites = results["rss"].get("seqserve_trace", {}).get("allocated_by_site", [])
        where = "; ".join(f"`{s['site']}` {s['bytes_per_session']:.0f} B" for s in sites[:5])
        notes.append(
            f"**Memory.** {rss['per_session']:.0f} B of RSS per idle session at "
            f"{rss['sessions']:,} sessions, against {rss['state_bytes']} B of state a session "
            f"(h and c as float32, {RAW_STATE_BYTES} B, plus the last input and output as "
            f"float64), so {rss['per_session'] - rss['state_bytes']:.0f} B a session is "
            "bookkeeping, allocator and spare-capacity overhead."
            + (
                f" Bytes allocated a session by source line (tracemalloc over "
                f"{results['rss']['seqserve_trace']['sessions']:,} sessions; allocated is not "
                f"resident: a slab's untouched spare capacity counts here, not in RSS): {where}."
                if where
                else ""
            )
        )
    return notes


def _machine(results: dict[str, Any]) -> list[str]:
    m = results["meta"]["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    return [
        f"- CPU: {m['cpu']}, {m['cores']} cores; {m['memory_gib']} GiB RAM; {m['os']}",
        f"- Python {m['python']}; {versions}",
        f"- {m['wrk']}",
        f"- seqserve commit {m['commit']}; model repository `{results['meta'].get('repository')}`",
    ]


def _load_generators(results: dict[str, Any]) -> str:
    cfg = results["config"]
    seq = point(results, "http", "seqserve", 64)
    ws = point(results, "ws", "seqserve", 64)
    shared = (
        f"At 64 streams wrk used {fmt(seq.get('client_cores'), '', 2)} cores while seqserve "
        f"used {fmt(seq.get('server_cores'), '', 2)}"
    )
    if ws:
        shared += (
            f"; over WebSocket the {ws.get('client_processes', 0):.0f} client processes used "
            f"{fmt(ws.get('client_cores'), '', 2)} cores and seqserve "
            f"{fmt(ws.get('server_cores'), '', 2)}"
        )
    return (
        "Everything ran on this one machine: the load generators shared its "
        f"{results['meta']['machine']['cores']} cores with the server under test, and the "
        "idle servers of the other rows stayed up (idle) during each point. HTTP load: wrk "
        "with a generated Lua script, one wrk thread per connection, each connection stepping "
        "its own session (created beforehand) with one timestep per request and no step "
        "index. WebSocket load: "
        f"{cfg['ws_procs']} client processes over raw sockets (pre-built masked frames, a "
        "minimal frame parser; one checked round trip with the `websockets` library first), "
        "each stream sending a step and waiting for its reply before the next. "
        f"{_grpc_load(results)}{shared}. Figures are medians over {cfg['repeats']} rounds of "
        f"{cfg['duration']:.0f} s per point; the rounds interleave all servers, so each ratio "
        "compares runs taken minutes apart on the same machine." + _noise(results)
    )


def _grpc_load(results: dict[str, Any]) -> str:
    """The gRPC streaming load's sentence, when the section ran."""
    grpc = results.get("grpc", {})
    if grpc.get("status") != "ok":
        return ""
    if grpc.get("client", "aio") == "aio":
        how = "a grpc.aio stub with pre-built messages"
    else:
        how = (
            "raw HTTP/2 on a socket (pre-encoded HEADERS and DATA frames, a minimal frame "
            "parser reading only each answer's id; one checked round trip with "
            "`tritonclient.grpc` first)"
        )
    p = point(results, "grpc", "seqserve", 64)
    used = ""
    if p:
        used = (
            f" (at 64 sequences its {p.get('client_processes', 0):.0f} client processes used "
            f"{fmt(p.get('client_cores'), '', 2)} cores and seqserve "
            f"{fmt(p.get('server_cores'), '', 2)})"
        )
    return (
        f"gRPC streaming load: {results['config']['ws_procs']} client processes, each with one "
        f"ModelStreamInfer stream carrying its share of the sequences, over {how}{used}. "
    )


def _noise(results: dict[str, Any]) -> str:
    """How busy the machine was with processes that were neither server nor load generator."""
    others = [
        run["other_cores"]
        for section in ("http", "ws")
        for name, points in results.get(section, {}).items()
        if isinstance(points, dict)
        for runs in points.values()
        for run in runs
        if name != "status" and "other_cores" in run
    ]
    if not others:
        return ""
    return (
        f" Other processes on the machine (neither the server under test nor the load "
        f"generator) used a median of {statistics.median(others):.2f} cores during the load "
        f"points (max {max(others):.2f}) of the {results['meta']['machine']['cores']}: "
        "single figures are noisy, and the medians and side-by-side ratios are what to read."
    )


def write(results: dict[str, Any], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / "img" / "benchmarks.png"
    chart.draw(results, png)
    meta = results["meta"]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `scripts/bench.py` (also `seqserve bench`); do not edit by hand. "
        "The benchmark does not run in CI. This file came from:",
        "",
        f"    {meta['command']}",
        "",
        f"on {meta['date']}, in {meta.get('wall_s', 0) / 60:.1f} minutes. Raw figures: "
        "`benchmarks.json` next to this file.",
        "",
        "## Machine",
        "",
        *_machine(results),
        "",
        "## Load generators",
        "",
        _load_generators(results),
        "",
        *_goals(results),
        "",
        "## Targets (issue 4)",
        "",
        *_table(verdicts(results)),
    ]
    lines += ["", "### Why", ""]
    for note in _why(results):
        lines += [note, ""]
    lines += [
        "## Every figure",
        "",
        '"vs floor": against the empty endpoint on the same stack at the same concurrency '
        "(throughput and latency), the empty endpoint at one stream (single-request latency), "
        f'or the raw {RAW_STATE_BYTES} B of h + c (memory). "vs naive": against the '
        "tutorial-style baseline at the same concurrency.",
        "",
        table.markdown(table.rows(results)),
        "",
        "![throughput, latency, history and memory](img/benchmarks.png)",
        "",
        *_method(results),
        "",
        *gpu.section(out_dir / "gpu_check.json"),  # recorded apart, by scripts/gpu_check.sh
        "",
        *ab.section(out_dir / "bench_ab.json"),  # recorded apart, by scripts/bench_ab.py
        "",
        *stream_window.section(out_dir / "bench_client.json"),  # by scripts/bench_client.py
        "",
        *path.section(out_dir / "bench_path.json"),  # recorded apart, by scripts/bench_path.py
    ]
    md = out_dir / "benchmarks.md"
    md.write_text("\n".join(lines).rstrip() + "\n")
    return [md, png]


def _cell(value: Any) -> str:
    return f"{value:,.2f}" if isinstance(value, float) else str(value)


def _method(results: dict[str, Any]) -> list[str]:
    cfg = results["config"]
    lines = [
        "## Method",
        "",
        "- **Floor, compute**: one `InferenceSession.run` of the served ONNX model in process "
        "(one intra-op thread, as the server), T = 1, batch 1, 64 and 1024; median of 5 rounds.",
        "- **Floor, stack**: `scripts/empty_app.py`, FastAPI on one uvicorn process with uvloop "
        "and httptools, answering `{}` on the step path, under the same wrk load.",
        "- **seqserve HTTP**: `python -m seqserve.service` with the bundled model; POST "
        '`/v1/sessions/{id}/steps` `{"inputs": [[415.2]]}`. Mean batch: '
        "`seqserve_ort_batch_size` sum/count deltas over each point.",
        "- **Mosec + session dict** (issue 13's peer): `scripts/peers/mosec_server.py` in "
        "`build/peers/mosec-venv` (mosec from PyPI; onnxruntime and numpy at seqserve's "
        "versions), one worker process batching up to 16 requests (1 ms window), h/c kept in "
        "a dict by the session id the body names; POST `/inference` "
        '`{"session": "<id>", "inputs": [[415.2]]}`, the same one session per connection. '
        "Its server CPU counts the whole process tree (Rust front and Python worker).",
        "- **Naive baseline**: `scripts/naive_server.py`: FastAPI, sync endpoints (thread pool), "
        "eager `nn.LSTM(1, 64)` plus a linear head, a dict of per-session `(h, c)` tensors, "
        "run with `uvicorn.run` defaults (access log off, as seqserve), with one torch thread "
        "(`OMP_NUM_THREADS=1`): with torch's default of one a core, the thread-pool workers "
        "spun in OpenMP and 1-stream runs fell to 100-200 steps/s, so the baseline gets its "
        "better setting. "
        "It skips seqserve's input scaling, validation and exactly-once bookkeeping.",
        "- **History**: sessions fed *h* steps (untimed, in chunks of 1,000) and stepped once "
        "more, then timed for 10 consecutive one-step requests each (history h + 1 to h + 10), "
        "the lengths taking turns, one request at a time from one keep-alive client, "
        f"{cfg['samples']} samples a length; recompute is POST `/v1/models/co2/predict` with "
        "the h + 1 steps and `return_sequences: false`, the best case for recompute.",
        f"- **Memory**: {cfg['sessions']:,} sessions created through `Engine.create_session` on "
        "the real `MemoryStateStore` in a fresh process (after a 2,000-session warm-up and "
        "`gc.collect()`), RSS from psutil; cross-checked over HTTP with wrk creating sessions "
        f"for {cfg['http_rss_seconds']:.0f} s against a fresh server. Naive: its own per-session "
        "objects, the same count.",
    ]
    errors = results.get("errors", {})
    notes = results.get("notes", [])
    if errors or notes:
        lines += ["", "## Problems during this run", ""]
        lines += [f"- {name}: {err}" for name, err in errors.items()]
        lines += [f"- {n}" for n in notes]
    extras = {k: v for k, v in results.get("extras", {}).items() if v.get("status") != "absent"}
    for name, extra in extras.items():
        lines += ["", f"## {name} ({extra['status']})", ""]
        if extra.get("rows"):
            keys = list(extra["rows"][0])
            lines += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
            lines += [
                "| " + " | ".join(_cell(r.get(k)) for k in keys) + " |" for r in extra["rows"]
            ]
            summary = extra.get("summary") or {}
            lines += ["", ", ".join(f"{k}: {_cell(v)}" for k, v in summary.items())]
        elif extra.get("output"):
            lines += ["```", extra["output"], "```"]
    ws = results.get("ws", {})
    if ws.get("status") == "pending":
        lines += ["", f"WebSocket figures are pending: {ws.get('reason')}."]
    rss_http = results.get("rss", {}).get("http")
    if rss_http and rss_http.get("per_session"):
        cross = ratio(rss_http["per_session"], results["rss"]["seqserve"]["per_session"])
        lines += ["", f"HTTP memory cross-check: {cross:.2f}× the in-process figure."]
    return lines
