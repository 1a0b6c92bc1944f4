"""The compute floor: one ONNX Runtime call of the served model, in process, at batch B, T=1.

Same session options as the server (one intra-op thread, CPU provider); inputs are built
once, so only `session.run` is timed.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnxruntime as ort


def _session(onnx_path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def ort_step_rounds(onnx_path: Path, batch: int, seconds: float, repeats: int) -> list[float]:
    """Per round (of `repeats`, `seconds` in all), the mean time of one `run` at this batch."""
    session = _session(onnx_path)
    shapes = {i.name: i.shape for i in session.get_inputs()}
    rng = np.random.default_rng(0)
    feeds = {}
    for name, shape in shapes.items():
        if name == "x":
            feeds[name] = rng.standard_normal((batch, 1, shape[2])).astype(np.float32)
        else:  # state [layers, batch, hidden]
            feeds[name] = np.zeros((shape[0], batch, shape[2]), np.float32)
    outputs = [o.name for o in session.get_outputs()]
    for _ in range(50):
        session.run(outputs, feeds)
    rounds = []
    for _ in range(repeats):
        n, started = 0, time.perf_counter()
        deadline = started + seconds / repeats
        while True:
            for _ in range(20):
                session.run(outputs, feeds)
            n += 20
            now = time.perf_counter()
            if now >= deadline:
                break
        rounds.append((now - started) / n)
    return rounds
