"""Input checks shared by the engine's operations; each failure is a BadInput (422)."""

from __future__ import annotations

import numpy as np
from seqserve.service.errors import BadInput
from seqserve.service.runtime.layout import MAX_STEP, StateRows
from seqserve.service.runtime.registry import LoadedModel
from seqserve.service.settings import LimitSettings, SessionSettings

Array = np.ndarray


def check_steps(model: LoadedModel, raw: Array, limit: int) -> Array:
    """raw must be [T, F] finite numbers, 1 <= T <= limit, within the model's range."""
    n_feat = model.manifest.n_features
    if raw.ndim != 2 or raw.shape[1] != n_feat or raw.shape[0] == 0:
        raise BadInput(
            f"inputs must be [T][{n_feat}] (T timesteps of {n_feat} features), "
            f"got shape {list(raw.shape)}",
            expected_features=n_feat,
        )
    if raw.shape[0] > limit:
        raise BadInput(
            f"{raw.shape[0]} timesteps exceed the limit of {limit} per request",
            max_timesteps=limit,
        )
    bound = model.transform.max_abs
    # one reduction on the hot path: the max is NaN when any value is, and Inf is out of bound
    if not np.abs(raw).max() <= bound:
        if not np.isfinite(raw).all():
            raise BadInput("inputs contain NaN or Infinity")
        raise BadInput(f"inputs must lie within ±{bound:.3g} for this model", max_abs=bound)
    return raw


def check_step_room(step: int, timesteps: int) -> None:
    """A step may not carry the session's index past MAX_STEP (the JSON-safe bound)."""
    if step + timesteps > MAX_STEP:
        raise BadInput(
            f"{timesteps} timesteps would carry the session past step {MAX_STEP}",
            current_step=step,
            max_step=MAX_STEP,
        )


def check_batch(limits: LimitSettings, sequences: int, timesteps: int) -> None:
    if not 1 <= sequences <= limits.max_batch:
        raise BadInput(f"give 1 to {limits.max_batch} sequences", max_batch=limits.max_batch)
    if timesteps > limits.max_predict_steps:
        raise BadInput(
            f"{timesteps} timesteps exceed the predict limit of {limits.max_predict_steps}",
            max_predict_steps=limits.max_predict_steps,
        )


def check_forecast(model: LoadedModel, horizon: int, limit: int) -> None:
    m = model.manifest
    if not m.forecastable:
        raise BadInput(
            f"model {m.name!r} does not offer forecasts: its outputs do not map to its inputs"
        )
    if not 1 <= horizon <= limit:
        raise BadInput(f"horizon must be in [1, {limit}]", max_horizon=limit)


def check_output_size(limits: LimitSettings, values: int) -> None:
    """An answer of `values` numbers must stay within `limits.max_output_values`."""
    if values > limits.max_output_values:
        raise BadInput(
            f"the answer would hold {values} values, more than the limit of "
            f"{limits.max_output_values} (batch x steps x outputs): ask for fewer sequences, "
            "steps or a shorter horizon",
            max_output_values=limits.max_output_values,
        )


def check_carry(model: LoadedModel, rows: StateRows) -> None:
    """An imported state's last input/output must be values the model can take."""
    limit = model.transform.max_abs
    if max(np.abs(rows.prev_x).max(), np.abs(rows.last_y).max()) > limit:
        raise BadInput(f"state.prev_x and state.last_y must lie within ±{limit:.3g}")


def session_ttls(
    s: SessionSettings, idle_ttl_s: float | None, ttl_s: float | None
) -> tuple[float, float]:
    """The (idle, absolute) TTLs asked for, or the defaults; refused beyond the caps."""
    idle = s.idle_ttl_s if idle_ttl_s is None else idle_ttl_s
    total = s.ttl_s if ttl_s is None else ttl_s
    if not 0 < idle <= s.max_idle_ttl_s or not 0 < total <= s.max_ttl_s:
        raise BadInput(
            f"idle_ttl_s must be in (0, {s.max_idle_ttl_s}] and ttl_s in (0, {s.max_ttl_s}]",
            max_idle_ttl_s=s.max_idle_ttl_s,
            max_ttl_s=s.max_ttl_s,
        )
    return idle, total
