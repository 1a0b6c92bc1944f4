"""Older stored replies of the memory store's sessions, in compact per-session rings.

The newest reply of a session stays in the session table and its slab; the ones before it
(up to `replay_depth - 1`) live here, in a ring row that a session takes only once it has
stepped twice: idle and once-stepped sessions cost nothing. A row is a few fixed-width
columns (start, length, digest, one-timestep outputs); a longer request's outputs are kept
in a dict beside them.
"""

from __future__ import annotations

import numpy as np
from seqserve.service.state.store import Replay

Array = np.ndarray


class ReplyRings:
    """Ring rows of `size` entries each for one model version (`n_outputs` wide); grows by
    doubling, freed rows are reused first."""

    def __init__(self, size: int, n_outputs: int, digest_bytes: int, capacity: int = 64) -> None:
        self.size = size
        self._n_outputs, self._digest_bytes = n_outputs, digest_bytes
        self._cols = self._allocate(capacity)
        self._long: dict[tuple[int, int], Array] = {}  # (row, entry) -> outputs [T > 1, O]
        self._free = list(range(capacity - 1, -1, -1))

    def _allocate(self, capacity: int) -> dict[str, Array]:
        k = self.size
        return {
            "start": np.zeros((capacity, k), np.int64),
            "length": np.zeros((capacity, k), np.int32),  # 0: an empty entry
            "digest": np.zeros((capacity, k, self._digest_bytes), np.uint8),
            "outputs": np.zeros((capacity, k, self._n_outputs), np.float64),
            "head": np.zeros(capacity, np.int32),  # the entry the next push writes
        }

    @property
    def capacity(self) -> int:
        return int(self._cols["head"].shape[0])

    def alloc(self) -> int:
        if not self._free:
            old = self.capacity
            grown = self._allocate(old * 2)
            for name, col in self._cols.items():
                grown[name][:old] = col
            self._cols = grown
            self._free = list(range(2 * old - 1, old - 1, -1))
        row = self._free.pop()
        self._cols["length"][row] = 0
        self._cols["head"][row] = 0
        return row

    def free(self, row: int) -> None:
        for entry in range(self.size):
            self._long.pop((row, entry), None)
        self._free.append(row)

    def push(self, row: int, start: int, digest: Array | bytes, outputs: Array) -> None:
        """Keep a reply as the newest of `row`, over its oldest when the ring is full."""
        c = self._cols
        entry = int(c["head"][row])
        c["head"][row] = (entry + 1) % self.size
        c["start"][row, entry] = start
        c["length"][row, entry] = outputs.shape[0]
        c["digest"][row, entry] = (
            np.frombuffer(digest, np.uint8) if isinstance(digest, bytes) else digest
        )
        if outputs.shape[0] == 1:
            c["outputs"][row, entry] = outputs[0]
            self._long.pop((row, entry), None)
        else:
            self._long[(row, entry)] = outputs

    def replies(self, row: int) -> list[Replay]:
        """The row's replies, newest first."""
        c = self._cols
        head, out = int(c["head"][row]), []
        for back in range(1, self.size + 1):
            entry = (head - back) % self.size
            length = int(c["length"][row, entry])
            if not length:
                break
            outputs = self._long.get((row, entry))
            if outputs is None:
                outputs = c["outputs"][row, entry][None].copy()
            digest = c["digest"][row, entry].tobytes()
            out.append(Replay(int(c["start"][row, entry]), digest, outputs))
        return out
