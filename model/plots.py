"""PNG plots of a training run: loss curves, and the test forecast against the truth."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from seqserve.model.data import Prepared  # noqa: E402
from seqserve.model.evaluate import TestReport  # noqa: E402

_META = {"Software": None}  # no matplotlib version stamp: identical runs give identical files


def plot_losses(history: dict[str, list[float]], best_epoch: int, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    epochs = range(1, len(history["train"]) + 1)
    ax.plot(epochs, history["train"], label="train (windows)")
    ax.plot(epochs, history["val"], label="validation (streamed)")
    ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch {best_epoch}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE, standardized weekly difference")
    ax.set_title("Training and validation loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=_META)
    plt.close(fig)


def plot_forecast(prep: Prepared, report: TestReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    dates = prep.dates[report.targets]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7))
    top.plot(dates, prep.raw[report.targets], color="black", lw=1, label="observed")
    top.plot(dates, report.forecasts[1], lw=1, label="LSTM, 1 week ahead")
    top.plot(dates, report.forecasts[13], lw=1, label="LSTM, 13 weeks ahead (autoregressive)")
    top.set_ylabel("CO2, ppm")
    top.set_title("Test split (1995-2001): forecast vs truth")
    top.legend(fontsize=8)
    horizons = sorted(report.horizons)
    for name, label in (
        ("model", "LSTM"),
        ("persistence", "persistence"),
        ("seasonal_naive", "seasonal naive (52 weeks)"),
    ):
        bottom.plot(horizons, [report.horizons[h][name].mae for h in horizons], "o-", label=label)
    bottom.set_xlabel("horizon, weeks")
    bottom.set_ylabel("test MAE, ppm")
    bottom.set_title("Test error by horizon")
    bottom.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=_META)
    plt.close(fig)
