"""Stateless runs over whole sequences: zero (or given) state in, outputs out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from seqserve.service.batching.assemble import group_by_length
from seqserve.service.checks import (
    check_batch,
    check_forecast,
    check_output_size,
    check_steps,
)
from seqserve.service.errors import BadInput
from seqserve.service.runtime.compute import advance, rollout
from seqserve.service.runtime.registry import LoadedModel
from seqserve.service.settings import LimitSettings

Array = np.ndarray
RunInPool = Callable[..., Awaitable[Any]]


async def predict(
    run: RunInPool,
    model: LoadedModel,
    limits: LimitSettings,
    sequences: list[Array],
    horizon: int | None,
) -> tuple[list[Array], list[Array] | None]:
    """Sequences [T_i, F] from zero state -> outputs [T_i, O] (and forecasts [horizon, O]).
    Equal lengths run together, one ONNX Runtime call per length."""
    check_batch(limits, len(sequences), sum(s.shape[0] if s.ndim else 0 for s in sequences))
    for seq in sequences:
        check_steps(model, seq, limits.max_predict_steps)
    if horizon is not None:
        check_forecast(model, horizon, limits.max_horizon)
    steps = sum(s.shape[0] for s in sequences) + len(sequences) * (horizon or 0)
    check_output_size(limits, steps * model.manifest.n_outputs)
    outputs: list[Array] = [np.empty(0)] * len(sequences)
    forecasts: list[Array] = [np.empty(0)] * len(sequences)
    for idx in group_by_length([s.shape[0] for s in sequences]).values():
        raw = np.stack([sequences[i] for i in idx])
        zeros = model.layout.zeros(len(idx))
        out, state = await run(advance, model, raw, zeros, np.zeros(len(idx), bool))
        fc = None if horizon is None else await run(rollout, model, state, horizon)
        for j, i in enumerate(idx):
            outputs[i] = out[j]
            if fc is not None:
                forecasts[i] = fc[j]
    return outputs, (None if horizon is None else forecasts)


async def run_batch(
    run: RunInPool,
    model: LoadedModel,
    limits: LimitSettings,
    raw: Array,
    state: list[Array] | None,
) -> tuple[Array, list[Array]]:
    """raw [B, T, F] from zero state, or from the given state tensors (float32 [B, L, H]
    each, manifest order) -> (outputs [B, T, O], final state tensors [B, L, H])."""
    if raw.ndim != 3:
        raise BadInput(f"give 1 to {limits.max_batch} sequences", max_batch=limits.max_batch)
    check_batch(limits, raw.shape[0], raw.shape[0] * raw.shape[1])
    for seq in raw:
        check_steps(model, seq, limits.max_predict_steps)
    check_output_size(limits, raw.shape[0] * raw.shape[1] * model.manifest.n_outputs)
    rows = model.layout.zeros(raw.shape[0])
    if state is not None:
        shapes = [list(t.shape) for t in rows.tensors]
        if [list(s.shape) for s in state] != shapes:
            raise BadInput(f"state tensors must have the shapes {shapes} ([B][L][H] each)")
        if not all(np.isfinite(s).all() for s in state):
            raise BadInput("state contains NaN or Infinity")
        rows.tensors = [s.astype(np.float32) for s in state]
    out, new = await run(advance, model, raw, rows, np.zeros(raw.shape[0], bool))
    return out, new.tensors
