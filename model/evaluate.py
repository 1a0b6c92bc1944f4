"""Forecast evaluation: streaming the model over the series, autoregressive rollouts, baselines.

Everything here follows how the server uses the model: the series is streamed from its first
week with a zero initial state (one session from 1958 on), and an h-step forecast from origin t
feeds each predicted model-space value back as the next input, exactly as the server's
forecast endpoint does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from seqserve.model.data import SEASON, Prepared
from torch import nn

HORIZONS = (1, 13)


def _as_input(values: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.float32).reshape(1, -1, 1)


@torch.no_grad()
def predict_all(model: nn.Module, prep: Prepared) -> np.ndarray:
    """Model-space one-step predictions `y[t]` for every t, streaming the whole series."""
    y, *_ = model(_as_input(prep.inputs), *model.zero_state(1))
    return y[0, :, 0].numpy().astype(np.float64)


@torch.no_grad()
def states_after_each_step(
    model: nn.Module, prep: Prepared
) -> tuple[np.ndarray, list[torch.Tensor]]:
    """One-step predictions and the states after every step (`[N, L, H]` per state tensor)."""
    states = model.zero_state(1)
    ys, kept = [], [[] for _ in states]
    x = _as_input(prep.inputs)
    for t in range(x.shape[1]):
        y, *states = model(x[:, t : t + 1], *states)
        ys.append(float(y[0, 0, 0]))
        for k, s in enumerate(states):
            kept[k].append(s[:, 0])
    return np.array(ys), [torch.stack(k) for k in kept]


@torch.no_grad()
def rollout(model: nn.Module, prep: Prepared, origins: np.ndarray, horizon: int) -> np.ndarray:
    """Raw-unit forecasts `[len(origins), horizon]` for steps origin+1 .. origin+horizon."""
    y1, states = states_after_each_step(model, prep)
    state = [s[origins].transpose(0, 1).contiguous() for s in states]  # [L, B, H]
    step_y = torch.as_tensor(y1[origins], dtype=torch.float32).reshape(-1, 1, 1)
    level = prep.raw[origins].copy()
    out = np.empty((len(origins), horizon))
    for k in range(horizon):
        level = prep.to_raw(step_y[:, 0, 0].numpy().astype(np.float64), level)
        out[:, k] = level
        if k + 1 < horizon:
            step_y, *state = model(step_y, *state)
    return out


@dataclass(frozen=True)
class Scores:
    mae: float
    rmse: float

    def as_dict(self) -> dict[str, float]:
        return {"mae": round(self.mae, 4), "rmse": round(self.rmse, 4)}


def score(pred: np.ndarray, truth: np.ndarray) -> Scores:
    err = pred - truth
    return Scores(mae=float(np.abs(err).mean()), rmse=float(np.sqrt((err**2).mean())))


@dataclass(frozen=True)
class TestReport:
    """Test-split scores per horizon for the model and the two naive baselines."""

    horizons: dict[int, dict[str, Scores]]
    targets: np.ndarray  # test indices
    forecasts: dict[int, np.ndarray]  # horizon -> model forecast for each test target (ppm)

    def as_dict(self) -> dict[str, object]:
        return {
            f"h{h}": {name: s.as_dict() for name, s in per.items()}
            for h, per in self.horizons.items()
        }


def evaluate_test(model: nn.Module, prep: Prepared, max_horizon: int = 13) -> TestReport:
    """Score every week of the test split as the target of an h-step forecast, h = 1..max."""
    n = len(prep.raw)
    targets = np.arange(prep.test_start, n)
    first_origin = prep.test_start - max_horizon
    origins = np.arange(first_origin, n - 1)
    paths = rollout(model, prep, origins, max_horizon)
    per_h: dict[int, dict[str, Scores]] = {}
    forecasts: dict[int, np.ndarray] = {}
    truth = prep.raw[targets]
    for h in range(1, max_horizon + 1):
        model_pred = paths[targets - h - first_origin, h - 1]
        forecasts[h] = model_pred
        per_h[h] = {
            "model": score(model_pred, truth),
            "persistence": score(prep.raw[targets - h], truth),
            "seasonal_naive": score(prep.raw[targets - SEASON], truth),
        }
    return TestReport(horizons=per_h, targets=targets, forecasts=forecasts)
