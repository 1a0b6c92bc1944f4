"""Contiguous per-model-version state storage: `[capacity, ...]` arrays with a free list."""

from __future__ import annotations

import numpy as np
from seqserve.service.runtime.layout import Layout, StateRows

Array = np.ndarray


def fits(layout: Layout, state: StateRows, batch: int) -> bool:
    """Whether `state` holds `batch` rows of `layout`: checked before any write, so that a
    scatter never fails half-way."""
    shapes = [(batch, *shape) for shape in layout.tensor_shapes]
    return (
        [t.shape for t in state.tensors] == shapes
        and state.prev_x.shape == (batch, layout.n_features)
        and state.last_y.shape == (batch, layout.n_outputs)
    )


class Slab:
    """Rows of recurrent state for one model version, plus each row's stored one-timestep
    reply (for replays). Grows by doubling; freed rows are reused first."""

    def __init__(self, layout: Layout, capacity: int = 256) -> None:
        self.layout = layout
        self._arrays = self._allocate(capacity)
        self._free = np.arange(capacity - 1, -1, -1, dtype=np.int32)
        self._n_free = capacity

    def _allocate(self, capacity: int) -> list[Array]:
        zeros = self.layout.zeros(capacity)
        replies = np.zeros((capacity, self.layout.n_outputs), np.float64)
        return [*zeros.tensors, zeros.prev_x, zeros.last_y, replies]

    @property
    def capacity(self) -> int:
        return int(self._arrays[0].shape[0])

    @property
    def used(self) -> int:
        return self.capacity - self._n_free

    @property
    def replies(self) -> Array:
        """[capacity, O]: the outputs of each row's last one-timestep step."""
        return self._arrays[-1]

    def alloc(self) -> int:
        if self._n_free == 0:
            old = self.capacity
            grown = self._allocate(old * 2)
            for new, cur in zip(grown, self._arrays, strict=True):
                new[:old] = cur
            self._arrays = grown
            fresh = np.arange(2 * old - 1, old - 1, -1, dtype=np.int32)
            self._free = np.concatenate([fresh, np.empty(old, np.int32)])
            self._n_free = old
        self._n_free -= 1
        row = int(self._free[self._n_free])
        for arr in self._arrays:
            arr[row] = 0
        return row

    def free(self, row: int) -> None:
        self._free[self._n_free] = row
        self._n_free += 1

    def gather(self, rows: list[int]) -> StateRows:
        idx = np.asarray(rows, dtype=np.intp)
        *tensors, prev_x, last_y = (arr[idx] for arr in self._arrays[:-1])
        return StateRows(tensors, prev_x, last_y)

    def scatter(self, rows: list[int], state: StateRows) -> None:
        idx = np.asarray(rows, dtype=np.intp)
        values = [*state.tensors, state.prev_x, state.last_y]
        for arr, value in zip(self._arrays, values, strict=False):
            arr[idx] = value
