"""Per-session recurrent state of one model version: its shapes, and rows of it for B sessions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Array = np.ndarray


MAX_STEP = 2**53 - 1  # the largest step index: every integer the API echoes stays exact in JSON


@dataclass(slots=True)
class StateRows:
    """Recurrent state of B sessions of one model version."""

    tensors: list[Array]  # one per state pair, float32 [B, L, H]
    prev_x: Array  # last raw input row, float64 [B, F]
    last_y: Array  # last decoded output row, float64 [B, O]

    def take(self, index: int) -> StateRows:
        sl = slice(index, index + 1)
        return StateRows([t[sl] for t in self.tensors], self.prev_x[sl], self.last_y[sl])


@dataclass(frozen=True, slots=True)
class Layout:
    """Shapes of one model version's per-session state."""

    tensor_shapes: tuple[tuple[int, int], ...]  # (layers, hidden) per state pair
    n_features: int
    n_outputs: int

    @property
    def nbytes(self) -> int:
        tensors = sum(4 * layers * size for layers, size in self.tensor_shapes)
        return tensors + 8 * (self.n_features + self.n_outputs)

    def zeros(self, batch: int) -> StateRows:
        return StateRows(
            [np.zeros((batch, layers, size), np.float32) for layers, size in self.tensor_shapes],
            np.zeros((batch, self.n_features), np.float64),
            np.zeros((batch, self.n_outputs), np.float64),
        )
