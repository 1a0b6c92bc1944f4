"""The manifest's preprocessing, applied to raw inputs and inverted on outputs (pure NumPy)."""

from __future__ import annotations

import numpy as np
from seqserve.service.runtime.manifest import Manifest

Array = np.ndarray


class Transform:
    """Raw feature values <-> the model's scaled (and differenced) space."""

    def __init__(self, manifest: Manifest) -> None:
        feats = manifest.features
        self.diff = np.array([f.difference for f in feats], dtype=bool)
        self.mean = np.array([f.mean for f in feats], dtype=np.float64)
        self.std = np.array([f.std for f in feats], dtype=np.float64)
        self.uses_carry = bool(self.diff.any())
        # largest |raw value| whose preprocessed form (a difference of two such values, scaled)
        # still fits in float32
        f32_max = float(np.finfo(np.float32).max)
        self.max_abs = float(np.min((f32_max * self.std - np.abs(self.mean)) / 4))
        mapped = [(j, o.feature) for j, o in enumerate(manifest.outputs) if o.feature is not None]
        self._out_idx = np.array([j for j, _ in mapped], dtype=np.intp)
        self._out_feat = np.array([k for _, k in mapped], dtype=np.intp)
        # output channel feeding each feature back in (only meaningful when forecastable)
        self._feedback = np.zeros(len(feats), dtype=np.intp)
        for j, k in mapped:
            self._feedback[k] = j

    def encode(self, raw: Array, prev: Array, has_prev: Array) -> Array:
        """raw [B,T,F] float64, prev [B,F] last raw row, has_prev [B] -> model x float32."""
        x = raw.copy()
        if self.uses_carry:
            d = self.diff
            first = np.where(has_prev[:, None], raw[:, 0, d] - prev[:, d], 0.0)
            x[:, 1:, d] = raw[:, 1:, d] - raw[:, :-1, d]
            x[:, 0, d] = first
        x -= self.mean
        x /= self.std
        return x.astype(np.float32)

    def decode(self, y: Array, raw: Array) -> Array:
        """Model outputs y [B,T,O] -> values in the dataset's units, float64."""
        out = y.astype(np.float64)
        if self._out_idx.size:
            j, k = self._out_idx, self._out_feat
            out[:, :, j] = out[:, :, j] * self.std[k] + self.mean[k]
            dk = self.diff[k]
            if dk.any():
                out[:, :, j[dk]] += raw[:, :, k[dk]]
        return out

    def feedback(self, out_row: Array) -> Array:
        """A decoded output row [B,O] -> the raw input row [B,F] it predicts."""
        return out_row[:, self._feedback]
