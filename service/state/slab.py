"""Contiguous per-model-version state storage: `[capacity, ...]` arrays with a free list."""

from __future__ import annotations

import numpy as np

from service.state.store import Layout, StateRows

Array = np.ndarray


class Slab:
    """Rows of recurrent state for one model version. Grows by doubling; rows are reused."""

    def __init__(self, layout: Layout, capacity: int = 256) -> None:
        self.layout = layout
        self._arrays = self._allocate(capacity)
        self._free: list[int] = list(range(capacity - 1, -1, -1))
        self.used = 0

    def _allocate(self, capacity: int) -> list[Array]:
        zeros = self.layout.zeros(capacity)
        return [*zeros.tensors, zeros.prev_x, zeros.last_y]

    @property
    def capacity(self) -> int:
        return int(self._arrays[0].shape[0])

    def alloc(self) -> int:
        if not self._free:
            old = self.capacity
            grown = self._allocate(old * 2)
            for new, cur in zip(grown, self._arrays, strict=True):
                new[:old] = cur
            self._arrays = grown
            self._free = list(range(2 * old - 1, old - 1, -1))
        row = self._free.pop()
        for arr in self._arrays:
            arr[row] = 0
        self.used += 1
        return row

    def free(self, row: int) -> None:
        self._free.append(row)
        self.used -= 1

    def gather(self, rows: list[int]) -> StateRows:
        idx = np.asarray(rows, dtype=np.intp)
        *tensors, prev_x, last_y = (arr[idx] for arr in self._arrays)
        return StateRows(tensors, prev_x, last_y)

    def scatter(self, rows: list[int], state: StateRows) -> None:
        idx = np.asarray(rows, dtype=np.intp)
        for arr, value in zip(
            self._arrays, [*state.tensors, state.prev_x, state.last_y], strict=True
        ):
            arr[idx] = value
