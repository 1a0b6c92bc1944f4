"""The default model's data: the weekly Mauna Loa CO2 series that ships inside statsmodels.

Preprocessing follows the manifest's serving convention exactly (see
`seqserve.service.runtime.manifest.Feature`): the model sees `(x[t] - x[t-1] - mean) / std`,
with the first timestep of a sequence, which has no predecessor, taken as a difference of 0; the
output at step t predicts the next step's model input, which the server inverts as
`x[t+1] = y * std + mean + x[t]`. The mean and std come from the training split only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# Time-ordered split, by calendar date: no future week ever reaches training or model selection.
# train 1958-03-29 .. 1989-12-30 (1,658 weeks), validation 1990-01-06 .. 1994-12-31 (261),
# test 1995-01-07 .. 2001-12-29 (365).
TRAIN_END = "1990-01-01"
VAL_END = "1995-01-01"
SEASON = 52  # weeks

PROVENANCE: dict[str, object] = {
    "name": "Mauna Loa weekly atmospheric CO2 (statsmodels.datasets.co2)",
    "source": "Scripps Institution of Oceanography, via CDIAC "
    "(http://cdiac.ornl.gov/trends/co2/sio-keel-flask/sio-keel-flaskmlo_c.html)",
    "citation": "Keeling, C.D. and T.P. Whorf. 2004. Atmospheric CO2 concentrations derived from "
    "flask air samples at sites in the SIO network. In Trends: A Compendium of Data on Global "
    "Change. CDIAC, Oak Ridge National Laboratory, U.S. Department of Energy.",
    "license": "public domain (as stated by statsmodels.datasets.co2.COPYRIGHT)",
    "loaded_with": "statsmodels.api.datasets.co2.load_pandas()",
    "unit": "ppm",
    "frequency": "weekly (Saturdays)",
}


@dataclass(frozen=True)
class Prepared:
    """The whole series, its model-space inputs and targets, and the split boundaries."""

    dates: pd.DatetimeIndex
    raw: np.ndarray  # [N] ppm
    inputs: np.ndarray  # [N] model space: (diff - mean) / std, diff[0] = 0
    mean: float
    std: float
    val_start: int  # first index of the validation split
    test_start: int  # first index of the test split
    n_missing: int  # weeks interpolated

    @property
    def targets(self) -> np.ndarray:
        """`targets[t]` is the model-space input at t+1 (NaN at the last step)."""
        return np.append(self.inputs[1:], np.nan)

    def to_raw(self, y: np.ndarray, prev: np.ndarray) -> np.ndarray:
        """Invert a model-space prediction for step t+1 given the raw value at step t."""
        return y * self.std + self.mean + prev

    def split_info(self) -> dict[str, object]:
        d = self.dates
        return {
            "train": [str(d[0].date()), str(d[self.val_start - 1].date()), self.val_start],
            "val": [
                str(d[self.val_start].date()),
                str(d[self.test_start - 1].date()),
                self.test_start - self.val_start,
            ],
            "test": [str(d[self.test_start].date()), str(d[-1].date()), len(d) - self.test_start],
            "interpolated_missing_weeks": self.n_missing,
        }


def load_co2() -> tuple[pd.Series, int]:
    """The weekly series in ppm with missing weeks interpolated in time, and how many were."""
    import statsmodels.api as sm

    series = sm.datasets.co2.load_pandas().data["co2"].astype(np.float64)
    n_missing = int(series.isna().sum())
    return series.interpolate(method="time", limit_direction="both"), n_missing


def difference(raw: np.ndarray) -> np.ndarray:
    """First difference with the serving convention: the first step's difference is 0."""
    return np.concatenate([[0.0], np.diff(raw)])


def prepare(series: pd.Series, n_missing: int = 0) -> Prepared:
    """Difference and standardize with statistics of the training split only."""
    dates = pd.DatetimeIndex(series.index)
    raw = series.to_numpy(dtype=np.float64)
    val_start = int(np.searchsorted(dates, pd.Timestamp(TRAIN_END)))
    test_start = int(np.searchsorted(dates, pd.Timestamp(VAL_END)))
    diff = difference(raw)
    train_diffs = diff[1:val_start]  # diff[0] is the convention, not an observation
    mean, std = float(train_diffs.mean()), float(train_diffs.std())
    return Prepared(
        dates=dates,
        raw=raw,
        inputs=(diff - mean) / std,
        mean=mean,
        std=std,
        val_start=val_start,
        test_start=test_start,
        n_missing=n_missing,
    )


def load_prepared() -> Prepared:
    series, n_missing = load_co2()
    return prepare(series, n_missing)
