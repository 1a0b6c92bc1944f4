"""Synchronous model math on batches of sessions; runs in the ONNX Runtime thread pool."""

from __future__ import annotations

import numpy as np
from seqserve.service.runtime.layout import StateRows
from seqserve.service.runtime.registry import LoadedModel

Array = np.ndarray


def advance(
    model: LoadedModel, raw: Array, state: StateRows, has_prev: Array
) -> tuple[Array, StateRows]:
    """Feed raw inputs [B,T,F] from `state` -> (decoded outputs [B,T,O] float64, new state)."""
    x = model.transform.encode(raw, state.prev_x, has_prev)
    feeds = [np.ascontiguousarray(t.transpose(1, 0, 2)) for t in state.tensors]
    y, new = model.runtime.run(x, feeds)
    out = model.transform.decode(y, raw)
    tensors = [np.ascontiguousarray(t.transpose(1, 0, 2)) for t in new]
    return out, StateRows(tensors, raw[:, -1].copy(), out[:, -1].copy())


def rollout(model: LoadedModel, state: StateRows, horizon: int) -> Array:
    """Autoregressive forecast [B, horizon, O] from a state whose last output is known.

    Row k is the prediction for the (k+1)-th step after the state's last input: row 0 is the
    stored last output, each further row feeds the previous prediction back as input.
    """
    batch = state.last_y.shape[0]
    forecast = np.empty((batch, horizon, state.last_y.shape[1]), np.float64)
    forecast[:, 0] = state.last_y
    forecast[:, 1:] = roll(model, state, horizon - 1)[0]
    return forecast


def roll(model: LoadedModel, state: StateRows, steps: int) -> tuple[Array, StateRows]:
    """The next `steps` predictions [B, steps, O] after the state's last output, and the
    state after them (a forecast stream continues from it)."""
    out = np.empty((state.last_y.shape[0], steps, state.last_y.shape[1]), np.float64)
    for k in range(steps):
        state = forecast_step(model, state)
        out[:, k] = state.last_y
    return out, state


def forecast_step(model: LoadedModel, state: StateRows) -> StateRows:
    """Feed the state's last prediction back in as the next input; its new last_y is the
    prediction one step further."""
    raw = model.transform.feedback(state.last_y)[:, None, :]
    return advance(model, raw, state, np.ones(raw.shape[0], dtype=bool))[1]
