"""JSON number lists -> NumPy arrays, refusing ragged rows with a clear error."""

from __future__ import annotations

import numpy as np
from seqserve.service.errors import BadInput


def steps_array(rows: list[list[float]], where: str = "inputs") -> np.ndarray:
    """[T][F] numbers -> float64 array of shape (T, F)."""
    widths = {len(row) for row in rows}
    if len(widths) > 1:
        raise BadInput(f"{where} is ragged: its timesteps have {sorted(widths)} features")
    if not rows:
        return np.zeros((0, 0), np.float64)
    return np.array(rows, dtype=np.float64)
