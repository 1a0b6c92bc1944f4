"""Step latency against history length, next to stateless recompute of the whole history.

Stateful: several sessions are each fed `h` steps and stepped once more (untimed); then each
takes BLOCK timed steps in a row, so samples are steady-state steps at h + 1 to h + BLOCK steps
of history (the first steps of a brand-new or forked session cost more than a stream's
steady state, which is what this measures).
The lengths take turns, a session each, so a burst of background load hits them alike.
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
BLOCK = 10


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


def measure(
    url: str, lengths: list[int], samples: int, stateless_budget_s: float, model: str = "co2"
) -> list[dict[str, float]]:
    """Per history length: p50/p99 (ms) of a stateful step and of a stateless recompute."""
    client = Client(url)
    series = _series(max(lengths) + BLOCK + 2)
    rounds = max(1, -(-samples // BLOCK))
    try:
        stateful: dict[int, list[float]] = {h: [] for h in lengths}
        for _ in range(rounds):
            for h in lengths:
                sid = _base_session(client, model, series[:h])
                for j in range(BLOCK + 1):  # the first step after feeding is not timed
                    body = {"inputs": series[h + j : h + j + 1]}
                    elapsed = client.timed("POST", f"/v1/sessions/{sid}/steps", body)
                    if j:
                        stateful[h].append(elapsed)
                client.request("DELETE", f"/v1/sessions/{sid}")
        stateless: dict[int, list[float]] = {}
        for h in lengths:
            body = {"inputs": [series[: h + 1]], "return_sequences": False}
            client.timed("POST", f"/v1/models/{model}/predict", body)  # warm-up
            times: list[float] = []
            deadline = time.monotonic() + stateless_budget_s
            while len(times) < samples and (len(times) < 5 or time.monotonic() < deadline):
                times.append(client.timed("POST", f"/v1/models/{model}/predict", body))
            stateless[h] = times
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
