"""Offline expectations: the NumPy reference LSTM plus the manifest's preprocessing,
written out here independently of service/runtime/transform.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from seqserve.model.reference import ReferenceModel
from seqserve.service.runtime.manifest import Manifest


class Expected:
    def __init__(self, model_dir: Path) -> None:
        self.manifest = Manifest.model_validate_json((model_dir / "model.json").read_bytes())
        self.ref = ReferenceModel.from_onnx(model_dir / "model.onnx")

    def preprocess(self, raw: np.ndarray, prev: np.ndarray | None) -> np.ndarray:
        """raw [T, F] -> model inputs [T, F]."""
        x = np.array(raw, dtype=np.float64)
        for k, feat in enumerate(self.manifest.features):
            if feat.difference:
                before = np.concatenate([[raw[0, k] if prev is None else prev[k]], raw[:-1, k]])
                x[:, k] = raw[:, k] - before
            x[:, k] = (x[:, k] - feat.mean) / feat.std
        return x

    def postprocess(self, y: np.ndarray, raw: np.ndarray) -> np.ndarray:
        out = np.array(y, dtype=np.float64)
        for j, o in enumerate(self.manifest.outputs):
            if o.feature is None:
                continue
            feat = self.manifest.features[o.feature]
            out[:, j] = y[:, j] * feat.std + feat.mean
            if feat.difference:
                out[:, j] += raw[:, o.feature]
        return out

    def run(self, raw: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """A whole sequence [T, F] from zero state -> (outputs [T, O], states [L, H] each)."""
        raw = np.asarray(raw, dtype=np.float64)
        y, states = self.ref.run(self.preprocess(raw, None)[None])
        return self.postprocess(y[0], raw), [s[:, 0] for s in states]

    def forecast(self, raw: np.ndarray, horizon: int) -> np.ndarray:
        """Feed `raw`, then roll the predictions forward: [horizon, O]."""
        raw = np.asarray(raw, dtype=np.float64)
        outputs, _ = self.run(raw)
        history = list(raw)
        preds = [outputs[-1]]
        for _ in range(horizon - 1):
            nxt = np.zeros(len(self.manifest.features))
            for j, o in enumerate(self.manifest.outputs):
                if o.feature is not None:
                    nxt[o.feature] = preds[-1][j]
            history.append(nxt)
            out, _ = self.run(np.array(history))
            preds.append(out[-1])
        return np.array(preds)
