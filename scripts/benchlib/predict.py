"""Stateless binary V2 predict of [64, 100, F] over HTTP against the same ONNX Runtime call in
process (issue 13: >= 0.9x): one keep-alive client, one request at a time, rounds taking turns."""

from __future__ import annotations

import http.client
import json
import statistics
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from benchlib.floor import _session

BATCH, STEPS = 64, 100


def _body(x: np.ndarray) -> tuple[bytes, int]:
    """A binary V2 request for `x` (no sequence_id: stateless, from zero state), y binary."""
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": list(x.shape),
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],  # fmt: skip
            "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
        }
    ).encode()
    return head + x.tobytes(), len(head)


def _over_http(url: str, model: str, x: np.ndarray, seconds: float) -> float:
    """Calls per second of POST /v2/models/{model}/infer, one at a time, keep-alive."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=60)
    body, head = _body(x)
    headers = {"Inference-Header-Content-Length": str(head)}

    def call() -> None:
        conn.request("POST", f"/v2/models/{model}/infer", body, headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"V2 predict -> {resp.status}: {data[:300]!r}")

    try:
        for _ in range(3):
            call()  # warm-up
        n, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            call()
            n += 1
        return n / (time.perf_counter() - started)
    finally:
        conn.close()


def _in_process(onnx_path: Path, x: np.ndarray, seconds: float) -> float:
    """Calls per second of the same batch through `InferenceSession.run` (server's options)."""
    session = _session(onnx_path)
    feeds: dict[str, np.ndarray] = {"x": x}
    for i in session.get_inputs():
        if i.name != "x":  # state [layers, batch, hidden], zero as a stateless request starts
            feeds[i.name] = np.zeros((i.shape[0], x.shape[0], i.shape[2]), np.float32)
    outputs = [o.name for o in session.get_outputs()]
    for _ in range(3):
        session.run(outputs, feeds)
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        session.run(outputs, feeds)
        n += 1
    return n / (time.perf_counter() - started)


def measure(
    url: str, model: str, onnx_path: Path, features: int, seconds: float, repeats: int
) -> dict[str, Any]:
    """Per round, calls/s over HTTP and in process and their ratio; the median ratio."""
    x = np.random.default_rng(0).normal(400.0, 10.0, (BATCH, STEPS, features)).astype(np.float32)
    rounds = []
    for k in range(repeats):
        first, second = ("http", "ort") if k % 2 == 0 else ("ort", "http")
        got = {}
        for side in (first, second):
            got[side] = (
                _over_http(url, model, x, seconds)
                if side == "http"
                else _in_process(onnx_path, x, seconds)
            )
        rounds.append({**got, "ratio": got["http"] / got["ort"]})
    ratio = statistics.median(r["ratio"] for r in rounds)
    return {"shape": [BATCH, STEPS, features], "rounds": rounds, "ratio": ratio}
