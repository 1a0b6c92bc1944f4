"""Classical forecasters for the CO2 test protocol, and the Diebold-Mariano test against them.

Every model is fitted on the training split only and then run, with its parameters fixed, over
the whole series, so that each test week is the target of a forecast made h weeks earlier from
the data up to that origin: the same protocol as `model.evaluate` (and as a server session
streamed since 1958). State-space models give h-step forecasts from the filtered state at each
origin (`Z T^(h-1) a[o+1|o]`), which is what statsmodels' `forecast` computes, for all origins
at once. Torch-free.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import stats

YEAR_WEEKS = 365.2425 / 7  # the true seasonal period of a weekly series, 52.18 weeks
SARIMA_ORDER = ((1, 1, 1), (1, 1, 1, 52))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """statsmodels warns about start values and convergence on these fits; the scores check them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def state_space_paths(res: object, origins: np.ndarray, horizon: int) -> np.ndarray:
    """h-step forecasts `[len(origins), horizon]` of a filtered statsmodels state-space result."""
    ssm = res.model.ssm
    z = ssm["design"][:, :, 0] if ssm["design"].ndim == 3 else ssm["design"]
    t = ssm["transition"][:, :, 0] if ssm["transition"].ndim == 3 else ssm["transition"]
    c = ssm["state_intercept"].reshape(len(t), -1)[:, 0]
    d = float(np.ravel(ssm["obs_intercept"])[0])
    a = res.predicted_state[:, origins + 1]  # a[o+1|o]
    out = np.empty((len(origins), horizon))
    for k in range(horizon):
        out[:, k] = (z @ a)[0] + d
        a = t @ a + c[:, None]
    return out


def sarima(train: np.ndarray, start: list[float] | None = None) -> object:
    """SARIMA(1,1,1)(1,1,1,52) fitted by maximum likelihood (about a minute on one core)."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    order, seasonal = SARIMA_ORDER
    with _quiet():
        model = SARIMAX(train, order=order, seasonal_order=seasonal)
        return model.fit(start_params=start, disp=False)


def sarima_params(train: np.ndarray, start: list[float] | None = None) -> list[float]:
    """Fitted parameters; `start` (e.g. a fit on fewer weeks) only speeds up the optimiser."""
    return [float(p) for p in sarima(train, start).params]


def sarima_paths(
    params: list[float], values: np.ndarray, origins: np.ndarray, horizon: int
) -> np.ndarray:
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    order, seasonal = SARIMA_ORDER
    with _quiet():
        res = SARIMAX(values, order=order, seasonal_order=seasonal).filter(np.asarray(params))
    return state_space_paths(res, origins, horizon)


def uc_model(values: np.ndarray) -> object:
    """The structural model: local linear trend, 3 harmonics of a 52.18-week year, AR(1)."""
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    return UnobservedComponents(
        values,
        level="local linear trend",
        freq_seasonal=[{"period": YEAR_WEEKS, "harmonics": 3}],
        autoregressive=1,
    )


def uc_params(train: np.ndarray) -> list[float]:
    """Local linear trend + 3 harmonics of a 52.18-week year + AR(1) noise (statsmodels UC)."""
    with _quiet():
        res = uc_model(train).fit(disp=False, maxiter=500)
    return [float(p) for p in res.params]


def uc_paths(
    params: list[float], values: np.ndarray, origins: np.ndarray, horizon: int
) -> np.ndarray:
    with _quiet():
        res = uc_model(values).filter(np.asarray(params))
    return state_space_paths(res, origins, horizon)


def holt_winters_params(train: np.ndarray) -> dict[str, object]:
    """Additive Holt-Winters (trend and 52-week season), statsmodels' ExponentialSmoothing."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    with _quiet():
        res = ExponentialSmoothing(train, trend="add", seasonal="add", seasonal_periods=52).fit()
    p = res.params
    return {
        "alpha": float(p["smoothing_level"]),
        "beta": float(p["smoothing_trend"]),
        "gamma": float(p["smoothing_seasonal"]),
        "level": float(p["initial_level"]),
        "trend": float(p["initial_trend"]),
        "seasons": [float(s) for s in p["initial_seasons"]],
    }


def holt_winters_paths(
    params: dict[str, object], values: np.ndarray, origins: np.ndarray, horizon: int
) -> np.ndarray:
    """Run the additive Holt-Winters recursions over `values` and forecast from each origin."""
    alpha, beta, gamma = (float(params[k]) for k in ("alpha", "beta", "gamma"))
    level, trend = float(params["level"]), float(params["trend"])
    seasons = list(map(float, params["seasons"]))
    m = len(seasons)
    season = np.array(seasons + [0.0] * len(values))  # season[t + m] belongs to week t
    levels, trends = np.empty(len(values)), np.empty(len(values))
    for t, y in enumerate(values):
        prev_level = level
        level = alpha * (y - season[t]) + (1 - alpha) * (level + trend)
        season[t + m] = gamma * (y - prev_level - trend) + (1 - gamma) * season[t]
        trend = beta * (level - prev_level) + (1 - beta) * trend
        levels[t], trends[t] = level, trend
    out = np.empty((len(origins), horizon))
    for k in range(1, horizon + 1):
        # the most recent estimate of the season of week o+k is that of week o+k-m (k <= m)
        out[:, k - 1] = levels[origins] + k * trends[origins] + season[origins + k]
    return out


@dataclass(frozen=True)
class DMResult:
    """Diebold-Mariano test of equal accuracy; negative `stat` means the first model is better."""

    stat: float
    p_value: float
    mean_diff: float


def diebold_mariano(e1: np.ndarray, e2: np.ndarray, h: int, power: int = 1) -> DMResult:
    """DM test on loss |e|^power, HAC variance with h-1 lags, Harvey-Leybourne-Newbold correction.

    The rectangular lag window is DM's original; if it gives a non-positive variance (it can),
    the Bartlett (Newey-West) window is used instead. The p-value is two-sided, from t(n-1).
    """
    d = np.abs(e1) ** power - np.abs(e2) ** power
    n = len(d)
    dc = d - d.mean()
    gamma = [float(dc @ dc) / n] + [float(dc[k:] @ dc[:-k]) / n for k in range(1, h)]
    var = gamma[0] + 2 * sum(gamma[1:])
    if gamma[0] == 0:  # identical losses at every week: no evidence either way
        return DMResult(stat=0.0, p_value=1.0, mean_diff=float(d.mean()))
    if var <= 0:
        var = gamma[0] + 2 * sum((1 - k / h) * g for k, g in enumerate(gamma[1:], start=1))
    dm = d.mean() / math.sqrt(var / n)
    hln = dm * math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    p = 2 * float(stats.t.sf(abs(hln), df=n - 1))
    return DMResult(stat=float(hln), p_value=p, mean_diff=float(d.mean()))


def by_horizon(paths: np.ndarray, first_origin: int, targets: np.ndarray) -> dict[int, np.ndarray]:
    """Forecast of each target made h steps before it, from paths indexed by origin."""
    return {h: paths[targets - h - first_origin, h - 1] for h in range(1, paths.shape[1] + 1)}
