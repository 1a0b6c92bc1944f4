"""Forecasts from an exported model directory as the server makes them, torch-free.

The series is streamed from its first week with a zero state (one session since 1958); an
h-step forecast from origin o feeds each model-space prediction back as the next input, as the
server's forecast endpoint does. Used to score a shipped model against the classical baselines
without its checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort


def _session(model_dir: Path) -> tuple[ort.InferenceSession, dict[str, object]]:
    manifest = json.loads((model_dir / "model.json").read_text())
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    path = str(model_dir / manifest["onnx_file"])
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"]), manifest


def onnx_paths(
    model_dir: str | Path, raw: np.ndarray, origins: np.ndarray, horizon: int
) -> np.ndarray:
    """Raw-unit forecasts `[len(origins), horizon]` for steps origin+1 .. origin+horizon."""
    sess, manifest = _session(Path(model_dir))
    sig = manifest["signature"]
    feat = manifest["features"][0]  # type: ignore[index]
    mean, std = float(feat["mean"]), float(feat["std"])
    x = (np.concatenate([[0.0], np.diff(raw)]) - mean) / std
    pairs = sig["state"]  # type: ignore[index]
    x_name, y_name = sig["data_input"]["name"], sig["data_output"]["name"]  # type: ignore[index]
    outs = [y_name] + [p["output"] for p in pairs]
    states = [np.zeros((p["layers"], 1, p["size"]), np.float32) for p in pairs]
    want = set(origins.tolist())
    kept: dict[int, tuple[float, list[np.ndarray]]] = {}
    for t in range(int(origins.max()) + 1):
        feed = {x_name: np.full((1, 1, 1), x[t], np.float32)}
        feed |= {p["input"]: s for p, s in zip(pairs, states, strict=True)}
        y, *states = sess.run(outs, feed)
        if t in want:
            kept[t] = (float(y[0, 0, 0]), states)
    step_y = np.array([kept[o][0] for o in origins], np.float32).reshape(-1, 1, 1)
    state = [np.concatenate([kept[o][1][k] for o in origins], axis=1) for k in range(len(pairs))]
    level = raw[origins].astype(np.float64)
    out = np.empty((len(origins), horizon))
    for k in range(horizon):
        level = step_y[:, 0, 0].astype(np.float64) * std + mean + level
        out[:, k] = level
        if k + 1 < horizon:
            feed = {x_name: step_y} | {p["input"]: s for p, s in zip(pairs, state, strict=True)}
            step_y, *state = sess.run(outs, feed)
    return out
