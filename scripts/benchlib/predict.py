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


def _in_process(model_dir: Path, x: np.ndarray, seconds: float) -> float:
    """Calls per second of the same batch through the server's own ONNX Runtime call
    (`OnnxModel.run`: its session options, its layout handling), zero state, in process."""
    from seqserve.service.runtime.onnx_model import OnnxModel

    model = OnnxModel.load(model_dir)
    manifest = json.loads((model_dir / "model.json").read_text())
    zeros = [
        np.zeros((s["layers"], x.shape[0], s["size"]), np.float32)
        for s in manifest["signature"]["state"]
    ]
    for _ in range(3):
        model.run(x, zeros)
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        model.run(x, zeros)
        n += 1
    return n / (time.perf_counter() - started)


def inputs(manifest: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(model-space x, raw x that the manifest's preprocessing turns into about that x): both
    sides then compute on the same values (saturated gates from unscaled inputs run slower)."""
    feats = manifest["features"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, STEPS, len(feats))).astype(np.float32)
    raw = np.empty_like(x)
    for k, f in enumerate(feats):
        values = x[:, :, k] * f.get("std", 1.0) + f.get("mean", 0.0)
        raw[:, :, k] = 400.0 + np.cumsum(values, axis=1) if f.get("difference") else values
    return x, raw


def measure(url: str, model: str, model_dir: Path, seconds: float, repeats: int) -> dict[str, Any]:
    """Per round, calls/s over HTTP and in process and their ratio; the median ratio."""
    x, raw = inputs(json.loads((model_dir / "model.json").read_text()))
    rounds = []
    for k in range(repeats):
        first, second = ("http", "ort") if k % 2 == 0 else ("ort", "http")
        got = {}
        for side in (first, second):
            got[side] = (
                _over_http(url, model, raw, seconds)
                if side == "http"
                else _in_process(model_dir, x, seconds)
            )
        rounds.append({**got, "ratio": got["http"] / got["ort"]})
    ratio = statistics.median(r["ratio"] for r in rounds)
    return {"shape": list(x.shape), "rounds": rounds, "ratio": ratio}
