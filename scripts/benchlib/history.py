"""Step latency against history length, next to stateless recompute of the whole history.

Stateful: a base session is fed `h` steps; each timed sample steps a fresh fork of it (a
copy of the state, made untimed), so every sample steps at exactly `h` steps of history.
Stateless: POST /v1/models/{model}/predict with the whole history plus the new step, asking
only for the last output (`return_sequences: false`), the best case for recompute.
Both are timed from one keep-alive client, one request at a time.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from benchlib.client import Client

CHUNK = 1000


def _series(n: int) -> list[list[float]]:
    """A CO2-like weekly series (ppm): trend plus a yearly cycle."""
    t = np.arange(n)
    values = 315.0 + 0.03 * t + 3.0 * np.sin(2 * np.pi * t / 52.18)
    return [[round(float(v), 3)] for v in values]


def _base_session(client: Client, model: str, history: list[list[float]]) -> str:
    sid = client.create_sessions(1, model, idle_ttl_s=3600.0)[0]
    for at in range(0, len(history), CHUNK):
        chunk = history[at : at + CHUNK]
        client.json("POST", f"/v1/sessions/{sid}/steps", {"inputs": chunk, "step": at})
    return sid


def _stateful_sample(client: Client, base: str, x: list[list[float]]) -> float:
    fork = client.json("POST", f"/v1/sessions/{base}/fork", expect=201)["id"]
    try:
        return client.timed("POST", f"/v1/sessions/{fork}/steps", {"inputs": x})
    finally:
        client.request("DELETE", f"/v1/sessions/{fork}")


def measure(
    url: str, lengths: list[int], samples: int, stateless_budget_s: float, model: str = "co2"
) -> list[dict[str, float]]:
    """Per history length: p50/p99 (ms) of a stateful step and of a stateless recompute."""
    client = Client(url)
    series = _series(max(lengths) + 1)
    try:
        bases = {h: _base_session(client, model, series[:h]) for h in lengths}
        stateful: dict[int, list[float]] = {h: [] for h in lengths}
        for _ in range(3):  # warm-up
            _stateful_sample(client, bases[lengths[0]], series[lengths[0] : lengths[0] + 1])
        block = 10
        while min(len(v) for v in stateful.values()) < samples:
            for h in lengths:
                for _ in range(block):
                    stateful[h].append(_stateful_sample(client, bases[h], series[h : h + 1]))
        stateless: dict[int, list[float]] = {}
        for h in lengths:
            body = {"inputs": [series[: h + 1]], "return_sequences": False}
            client.timed("POST", f"/v1/models/{model}/predict", body)  # warm-up
            times: list[float] = []
            deadline = time.monotonic() + stateless_budget_s
            while len(times) < samples and (len(times) < 5 or time.monotonic() < deadline):
                times.append(client.timed("POST", f"/v1/models/{model}/predict", body))
            stateless[h] = times
        for sid in bases.values():
            client.request("DELETE", f"/v1/sessions/{sid}")
    finally:
        client.close()
    rows = []
    for h in lengths:
        sf, sl = np.asarray(stateful[h]), np.asarray(stateless[h])
        rows.append(
            {
                "history": h,
                "stateful_p50_ms": float(statistics.median(sf)) * 1e3,
                "stateful_p99_ms": float(np.percentile(sf, 99)) * 1e3,
                "stateful_n": len(sf),
                "stateless_p50_ms": float(statistics.median(sl)) * 1e3,
                "stateless_p99_ms": float(np.percentile(sl, 99)) * 1e3,
                "stateless_n": len(sl),
            }
        )
    return rows
