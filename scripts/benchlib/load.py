"""Load points: wrk (HTTP) and the WebSocket client against one server, one point at a time,
with the server's CPU use and, for seqserve, /metrics deltas (mean batch, ORT time a step)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psutil
from launch import ServerProcess

from benchlib import grpcload, wrk, wsload
from benchlib.client import metric_total, scrape


@dataclass
class Target:
    """A server under load and the session ids its streams use (connection k: ids[k]), with
    the step request wrk sends it (`{id}` in the path or body: the connection's session)."""

    name: str
    server: ServerProcess
    ids: list[str] = field(default_factory=list)
    has_metrics: bool = False
    path: str = "/v1/sessions/{id}/steps"
    body: str = wrk.STEP_BODY


def _metrics(target: Target) -> dict[str, float]:
    if not target.has_metrics:
        return {}
    values = scrape(target.server.url)
    return {
        "batch_sum": metric_total(values, "seqserve_ort_batch_size_sum"),
        "batch_count": metric_total(values, "seqserve_ort_batch_size_count"),
        "ort_seconds": metric_total(values, "seqserve_ort_run_seconds_sum"),
    }


def _busy() -> float:
    """CPU seconds the whole machine has spent busy (all processes, all cores)."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def _server_figures(
    target: Target,
    before: dict[str, float],
    cpu0: float,
    busy0: float,
    steps: int,
    seconds: float,
    client_cpu: float,
) -> dict[str, Any]:
    cpu = target.server.cpu_seconds() - cpu0
    busy = _busy() - busy0
    out: dict[str, Any] = {
        "server_cores": cpu / seconds,
        "server_cpu_us_per_step": cpu / max(steps, 1) * 1e6,
        "other_cores": max(busy - cpu - client_cpu, 0.0) / seconds,  # neither server nor load
    }
    after = _metrics(target)
    if after:
        calls = after["batch_count"] - before["batch_count"]
        batched = after["batch_sum"] - before["batch_sum"]
        out["batch_mean"] = batched / calls if calls else None
        out["ort_calls"] = calls
        out["ort_us_per_step"] = (
            (after["ort_seconds"] - before["ort_seconds"]) / max(batched, 1) * 1e6
        )
    return out


def http_point(target: Target, streams: int, seconds: float) -> dict[str, Any]:
    before, cpu0, busy0 = _metrics(target), target.server.cpu_seconds(), _busy()
    r = wrk.run(target.server.url, target.ids, streams, seconds, target.path, body=target.body)
    figures = _server_figures(target, before, cpu0, busy0, r.requests, r.seconds, r.wrk_cpu_s)
    return {
        "rps": r.rps,
        "p50_ms": r.p50_ms,
        "p99_ms": r.p99_ms,
        "requests": r.requests,
        "errors": r.errors,
        "non2xx": r.non2xx,
        "client_cores": r.wrk_cpu_s / r.seconds,
        **figures,
    }


def ws_point(target: Target, streams: int, seconds: float, processes: int) -> dict[str, Any]:
    before, cpu0, busy0 = _metrics(target), target.server.cpu_seconds(), _busy()
    r = wsload.run(target.server.url, target.ids, streams, seconds, processes)
    figures = _server_figures(target, before, cpu0, busy0, r.messages, r.seconds, r.client_cpu_s)
    return {
        "rps": r.rate,
        "p50_ms": r.p50_ms,
        "p99_ms": r.p99_ms,
        "requests": r.messages,
        "errors": r.errors,
        "client_processes": r.processes,
        "client_cores": r.client_cpu_s / r.seconds,
        **figures,
    }


def grpc_point(
    target: Target, streams: int, seconds: float, processes: int, client: str = "raw"
) -> dict[str, Any]:
    """gRPC streaming steps at `streams` sequences (the server's SEQSERVE_GRPC_PORT)."""
    before, cpu0, busy0 = _metrics(target), target.server.cpu_seconds(), _busy()
    address = "127.0.0.1:" + target.server.env["SEQSERVE_GRPC_PORT"]
    r = grpcload.run(address, "co2", streams, seconds, processes, client)
    figures = _server_figures(target, before, cpu0, busy0, r.messages, r.seconds, r.client_cpu_s)
    return {
        "rps": r.rate,
        "p50_ms": r.p50_ms,
        "p99_ms": r.p99_ms,
        "requests": r.messages,
        "errors": r.errors,
        "client_processes": r.processes,
        "client_cores": r.client_cpu_s / r.seconds,
        **figures,
    }


def rss_over_http(target: Target, seconds: float, connections: int = 16) -> dict[str, Any]:
    """Create sessions with wrk for `seconds`; server RSS delta over the sessions created."""
    url = target.server.url

    def active() -> float:
        return metric_total(scrape(url), "seqserve_sessions_active")

    n0, rss0 = active(), target.server.rss()
    ids = ["-"] * connections
    r = wrk.run(url, ids, connections, seconds, path="/v1/sessions", body='{"model": "co2"}')
    n1, rss1 = active(), target.server.rss()
    created = int(n1 - n0)
    return {
        "sessions": created,
        "rss_before": rss0,
        "rss_after": rss1,
        "per_session": (rss1 - rss0) / created if created else None,
        "create_rate": r.rps,
        "non2xx": r.non2xx,
    }
