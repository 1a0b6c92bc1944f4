"""Pure batch assembly: group steps by length, gather and scatter state rows (no asyncio)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from seqserve.service.runtime.layout import StateRows

Array = np.ndarray
Advance = Callable[[Array, StateRows, Array], tuple[Array, StateRows]]


def group_by_length(lengths: Sequence[int]) -> dict[int, list[int]]:
    """Indices of equal-length steps, so each group runs as one exact (unpadded) call."""
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        groups.setdefault(n, []).append(i)
    return groups


def select(state: StateRows, idx: Sequence[int]) -> StateRows:
    rows = np.asarray(idx, dtype=np.intp)
    return StateRows([t[rows] for t in state.tensors], state.prev_x[rows], state.last_y[rows])


def assign(target: StateRows, idx: Sequence[int], source: StateRows) -> None:
    rows = np.asarray(idx, dtype=np.intp)
    for dst, src in zip(target.tensors, source.tensors, strict=True):
        dst[rows] = src
    target.prev_x[rows] = source.prev_x
    target.last_y[rows] = source.last_y


def run_groups(
    advance: Advance, raws: Sequence[Array], state: StateRows, has_prev: Array
) -> tuple[list[Array | BaseException], StateRows]:
    """Run B steps ([T_i, F] each) grouped by T. Returns per-step outputs ([T_i, O]) or the
    exception its group raised, and the new state (rows of failed groups left unchanged)."""
    groups = group_by_length([r.shape[0] for r in raws])
    if len(groups) == 1:  # the common case: one call on the batch as it is, no row shuffling
        try:
            out, rows = advance(np.stack(raws), state, has_prev)
        except Exception as exc:
            return [exc] * len(raws), state
        return list(out), rows
    new = select(state, range(len(raws)))
    results: list[Array | BaseException] = [np.empty(0)] * len(raws)
    for idx in groups.values():
        try:
            out, rows = advance(np.stack([raws[i] for i in idx]), select(state, idx), has_prev[idx])
        except Exception as exc:  # a failed group fails its own steps and nothing else
            for i in idx:
                results[i] = exc
            continue
        assign(new, idx, rows)
        for j, i in enumerate(idx):
            results[i] = out[j]
    return results, new
