"""Mosec with a session dict: issue 13's peer for stateful steps, serving seqserve's model.

One Mosec worker process (Mosec's Rust HTTP front batches up to 16 requests into one
`forward`) loads the model's ONNX file with ONNX Runtime and keeps each session's h/c (and
last input, for the manifest's differencing) in a dict keyed by the session id the request
names; an unknown id starts from zero state. The manifest's scaling is applied both ways, as
seqserve applies it. It runs in its own venv (mosec, onnxruntime, numpy; no seqserve):

    build/peers/mosec-venv/bin/python scripts/peers/mosec_server.py --port 8010 \
        --repository service/model_repository --model co2
    POST /inference {"session": "s1", "inputs": [[415.2]]} -> {"outputs": [[...]]}
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from mosec import Server, Worker

MODEL_DIR = "MOSEC_PEER_MODEL_DIR"  # how the spawned worker learns what to load
MAX_BATCH = 16


def latest_version(repository: Path, model: str) -> Path:
    versions = [p for p in (repository / model).iterdir() if p.name.isdigit()]
    return max(versions, key=lambda p: int(p.name))


class Scaling:
    """The manifest's per-feature preprocessing (optional differencing, then mean/std)."""

    def __init__(self, manifest: dict[str, Any]) -> None:
        features = manifest["features"]
        self.mean = np.array([f.get("mean", 0.0) for f in features], np.float32)
        self.std = np.array([f.get("std", 1.0) for f in features], np.float32)
        self.diff = np.array([bool(f.get("difference")) for f in features])
        self.out_feature = [o.get("feature") for o in manifest["outputs"]]

    def inputs(self, x: np.ndarray, last: np.ndarray, has_last: np.ndarray) -> np.ndarray:
        """x [B, F] in dataset units -> the model's [B, F]; `last` is each row's previous x
        (a session's first step has none: its difference is 0, as in seqserve)."""
        d = np.where(self.diff, np.where(has_last[:, None], x - last, 0.0), x)
        return ((d - self.mean) / self.std).astype(np.float32)

    def outputs(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """y [B, O] -> dataset units, each output undoing its feature's scaling."""
        out = y.copy()
        for k, f in enumerate(self.out_feature):
            if f is not None:
                out[:, k] = (
                    y[:, k] * self.std[f] + self.mean[f] + np.where(self.diff[f], x[:, f], 0.0)
                )
        return out


class StatefulStep(Worker):
    """One timestep for each request in the batch, state gathered from and put back in a dict."""

    def __init__(self) -> None:
        super().__init__()
        folder = Path(os.environ[MODEL_DIR])
        manifest = json.loads((folder / "model.json").read_text())
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # as seqserve runs it
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(folder / manifest.get("onnx_file", "model.onnx")),
            options,
            providers=["CPUExecutionProvider"],
        )
        sig = manifest["signature"]
        self.x_name, self.y_name = sig["data_input"]["name"], sig["data_output"]["name"]
        self.pairs = [(s["input"], s["output"], s["layers"], s["size"]) for s in sig["state"]]
        self.scaling = Scaling(manifest)
        self.n_features = len(manifest["features"])
        # session id -> (one [layers, hidden] array per state pair, last input [F] or None)
        self.sessions: dict[str, tuple[list[np.ndarray], np.ndarray | None]] = {}
        self.no_last = np.zeros(self.n_features, np.float32)

    def _state(self, sid: str) -> tuple[list[np.ndarray], np.ndarray | None]:
        found = self.sessions.get(sid)
        if found is None:
            zeros = [np.zeros((layers, size), np.float32) for _, _, layers, size in self.pairs]
            found = self.sessions[sid] = (zeros, None)
        return found

    def forward(self, data: list[dict[str, Any]]) -> list[dict[str, Any]]:
        sids = [str(d["session"]) for d in data]
        states = [self._state(s) for s in sids]
        x = np.array([d["inputs"][0] for d in data], np.float32)  # [B, F]: one step each
        has_last = np.array([s[1] is not None for s in states])
        last = np.stack([self.no_last if s[1] is None else s[1] for s in states])
        feeds = {self.x_name: self.scaling.inputs(x, last, has_last)[:, None, :]}
        for k, (name, _, _, _) in enumerate(self.pairs):
            feeds[name] = np.stack([s[0][k] for s in states], axis=1)  # [layers, B, hidden]
        outputs = [self.y_name, *(out for _, out, _, _ in self.pairs)]
        y, *new = self.session.run(outputs, feeds)
        for b, sid in enumerate(sids):
            self.sessions[sid] = ([n[:, b].copy() for n in new], x[b])
        answer = self.scaling.outputs(y[:, -1, :], x)
        return [{"outputs": [row]} for row in answer.tolist()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repository", type=Path, required=True)
    parser.add_argument("--model", default="co2")
    parser.add_argument("--max-wait-ms", type=int, default=1, help="Mosec's batch window")
    args, _ = parser.parse_known_args()  # the rest (--port, ...) is Mosec's own
    os.environ[MODEL_DIR] = str(latest_version(args.repository, args.model))
    server = Server()
    server.append_worker(StatefulStep, num=1, max_batch_size=MAX_BATCH,
                         max_wait_time=args.max_wait_ms)  # fmt: skip
    server.run()


if __name__ == "__main__":
    main()
