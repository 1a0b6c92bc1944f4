"""The classical baselines and the Diebold-Mariano test behind docs/model.md's comparison."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from seqserve.model import baselines as bl

pytestmark = pytest.mark.model

ROOT = Path(__file__).parents[2]
CACHE = ROOT / "model" / "baselines_params.json"


def test_dm_at_one_week_is_the_one_sample_t_test_of_the_loss_differential() -> None:
    # with h = 1 there are no lags, and the HLN factor turns DM into Student's t exactly
    rng = np.random.default_rng(0)
    e1, e2 = rng.normal(0, 1.0, 300), rng.normal(0, 1.2, 300)
    got = bl.diebold_mariano(e1, e2, h=1)
    want = stats.ttest_1samp(np.abs(e1) - np.abs(e2), 0.0)
    assert got.stat == pytest.approx(want.statistic, rel=1e-12)
    assert got.p_value == pytest.approx(want.pvalue, rel=1e-9)


def test_dm_sign_symmetry_and_power() -> None:
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 1, 365)
    better, worse = 0.5 * noise, noise + rng.normal(0, 0.5, 365)
    a, b = bl.diebold_mariano(better, worse, h=13), bl.diebold_mariano(worse, better, h=13)
    assert a.stat < -3
    assert a.p_value < 0.01
    assert b.stat == pytest.approx(-a.stat)
    assert b.p_value == pytest.approx(a.p_value)
    same = bl.diebold_mariano(noise, -noise, h=4)  # equal absolute errors everywhere
    assert (same.stat, same.p_value) == (0.0, 1.0)


def test_dm_hac_variance_counts_h_minus_1_lags() -> None:
    # overlapping h-step errors are autocorrelated; ignoring it (h=1) overstates significance
    rng = np.random.default_rng(2)
    shocks = rng.normal(0, 1, 400)
    e1 = np.convolve(shocks, np.ones(8), "valid")  # an MA(7), like 8-step forecast errors
    e2 = 1.1 * e1 + rng.normal(0, 0.3, len(e1))
    assert abs(bl.diebold_mariano(e1, e2, h=8).stat) < abs(bl.diebold_mariano(e1, e2, h=1).stat)


def test_holt_winters_recursion_matches_statsmodels() -> None:
    from seqserve.model.data import load_prepared
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    train = load_prepared().raw[:520]
    params = bl.holt_winters_params(train)
    fit = ExponentialSmoothing(train, trend="add", seasonal="add", seasonal_periods=52).fit()
    one_step = bl.holt_winters_paths(params, train, np.arange(len(train) - 1), 1)[:, 0]
    np.testing.assert_allclose(one_step, fit.fittedvalues[1:], atol=1e-9)
    ahead = bl.holt_winters_paths(params, train, np.array([len(train) - 1]), 13)[0]
    np.testing.assert_allclose(ahead, fit.forecast(13), atol=1e-9)


@pytest.mark.parametrize("kind", ["sarima", "uc"])
def test_state_space_paths_are_statsmodels_forecasts_from_each_origin(kind: str) -> None:
    from seqserve.model.data import load_prepared

    raw = load_prepared().raw[:1760]  # short enough for SARIMA's 107-dim state to filter fast
    params = json.loads(CACHE.read_text())[kind]
    origins = np.array([1680, 1745])
    if kind == "sarima":
        from statsmodels.tsa.statespace.sarimax import SARIMAX

        (order, seasonal), paths_of = bl.SARIMA_ORDER, bl.sarima_paths

        def forecast(known: np.ndarray) -> np.ndarray:
            return SARIMAX(known, order=order, seasonal_order=seasonal).filter(params).forecast(13)
    else:
        paths_of = bl.uc_paths

        def forecast(known: np.ndarray) -> np.ndarray:
            return bl.uc_model(known).filter(params).forecast(13)

    paths = paths_of(params, raw, origins, 13)  # all origins from one pass over the series
    for row, o in zip(paths, origins, strict=True):
        np.testing.assert_allclose(row, forecast(raw[: o + 1]), atol=1e-9)  # only what was known


def test_onnx_forecasts_reproduce_the_shipped_models_published_metrics() -> None:
    from seqserve.model.data import load_prepared
    from seqserve.model.onnx_forecast import onnx_paths

    model_dir = ROOT / "service" / "model_repository" / "co2" / "1"
    published = json.loads((model_dir / "model.json").read_text())["metrics"]
    prep = load_prepared()
    targets = np.arange(prep.test_start, len(prep.raw))
    first = prep.test_start - 13
    paths = onnx_paths(model_dir, prep.raw, np.arange(first, len(prep.raw) - 1), 13)
    by_h = bl.by_horizon(paths, first, targets)
    maes = [np.abs(by_h[h] - prep.raw[targets]).mean() for h in range(1, 14)]
    np.testing.assert_allclose(maes, published["test_mae_by_horizon"]["model"], atol=6e-5)
