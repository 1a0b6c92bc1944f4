"""`seqserve train`: fit the default CO2 forecaster, seeded and reproducible.

The model learns the next week's preprocessed difference from random windows of the training
split (each started from a zero state, like a fresh session), is selected by early stopping on
the validation split (streamed from 1958 on, like a long-lived session), and is scored on the
test split against persistence and seasonal-naive baselines. The checkpoint holds everything
`seqserve export` needs.
"""

from __future__ import annotations

import copy
import random
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from seqserve.model import lstm
from seqserve.model.config import TrainConfig
from seqserve.model.data import PROVENANCE, Prepared, load_prepared
from seqserve.model.evaluate import HORIZONS, evaluate_test, predict_all
from torch import nn
from tqdm import tqdm

CHECKPOINT = "checkpoint.pt"
# Where a run writes and whether it shows a bar do not change the model: keep them out of the
# manifest, so that the same config reproduces model.json byte for byte.
_NOT_RECORDED = ("out_dir", "plot_dir", "progress", "plots", "force")


class RunExists(FileExistsError):
    """The run directory already holds a checkpoint; runs are not overwritten without force."""


def check_run_dir(cfg: TrainConfig) -> Path:
    """The run directory, refused (before any training) if it holds a checkpoint and not force."""
    out = Path(cfg.out_dir)
    if (out / CHECKPOINT).exists() and not cfg.force:
        raise RunExists(f"{out / CHECKPOINT} exists; choose another --out or pass --force")
    return out


def seed_everything(seed: int, threads: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)


def windows(prep: Prepared, window: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All training windows `[N, window, 1]` and their targets; targets stay inside train."""
    targets = prep.targets
    starts = np.arange(0, prep.val_start - window, stride)
    idx = starts[:, None] + np.arange(window)[None, :]
    x = torch.as_tensor(prep.inputs[idx], dtype=torch.float32).unsqueeze(-1)
    y = torch.as_tensor(targets[idx], dtype=torch.float32).unsqueeze(-1)
    return x, y


def initial_state(
    model: nn.Module, batch: int, scale: float, gen: torch.Generator
) -> tuple[torch.Tensor, ...]:
    zeros = model.zero_state(batch)
    if scale == 0.0:
        return zeros
    return tuple((torch.rand(z.shape, generator=gen) * 2 - 1) * scale for z in zeros)


def val_loss(model: nn.Module, prep: Prepared) -> float:
    """MSE (model space) of one-step predictions whose target lies in the validation split."""
    y = predict_all(model, prep)
    t = np.arange(prep.val_start - 1, prep.test_start - 1)
    return float(np.mean((y[t] - prep.targets[t]) ** 2))


def fit(model: nn.Module, prep: Prepared, cfg: TrainConfig) -> dict[str, list[float]]:
    """Train with Adam, gradient clipping and early stopping; leaves the best weights loaded."""
    x, y = windows(prep, cfg.window, cfg.stride)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = nn.MSELoss()
    history: dict[str, list[float]] = {"train": [], "val": []}
    best, best_state, since_best = float("inf"), copy.deepcopy(model.state_dict()), 0
    bar = tqdm(range(cfg.max_epochs), desc="train", unit="epoch", disable=not cfg.progress)
    for _epoch in bar:
        model.train()
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for b in range(0, len(x), cfg.batch_size):
            idx = order[b : b + cfg.batch_size]
            pred, *_ = model(x[idx], *initial_state(model, len(idx), cfg.state_noise, gen))
            loss = loss_fn(pred, y[idx])
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
            opt.step()
            total += loss.item() * len(idx)
        model.eval()
        history["train"].append(total / len(x))
        history["val"].append(val_loss(model, prep))
        bar.set_postfix(train=f"{history['train'][-1]:.4f}", val=f"{history['val'][-1]:.4f}")
        if history["val"][-1] < best:
            best, best_state, since_best = history["val"][-1], copy.deepcopy(model.state_dict()), 0
        else:
            since_best += 1
            if since_best >= cfg.patience:
                break
    model.load_state_dict(best_state)
    return history


def train(cfg: TrainConfig) -> dict[str, object]:
    """Train, evaluate, plot and save a checkpoint; returns the checkpoint dict."""
    out = check_run_dir(cfg)
    seed_everything(cfg.seed, cfg.threads)
    prep = load_prepared()
    model = lstm.build(cfg.cell, 1, cfg.hidden_size, cfg.num_layers, 1)
    history = fit(model, prep, cfg)
    report = evaluate_test(model, prep, max(HORIZONS))
    best_epoch = int(np.argmin(history["val"])) + 1
    metrics = {
        "test": {k: v for k, v in report.as_dict().items() if int(k[1:]) in HORIZONS},
        "test_mae_by_horizon": {
            name: [round(report.horizons[h][name].mae, 4) for h in sorted(report.horizons)]
            for name in ("model", "persistence", "seasonal_naive")
        },
        "best_val_mse": round(min(history["val"]), 6),
        "best_epoch": best_epoch,
        "epochs_run": len(history["val"]),
    }
    out.mkdir(parents=True, exist_ok=True)
    if cfg.plots:
        from seqserve.model.plots import plot_forecast, plot_losses

        plot_dir = Path(cfg.plot_dir) if cfg.plot_dir is not None else out
        plot_losses(history, best_epoch, plot_dir / "loss.png")
        plot_forecast(prep, report, plot_dir / "forecast.png")
    checkpoint: dict[str, object] = {
        "arch": {
            "cell": cfg.cell,
            "n_features": 1,
            "hidden_size": cfg.hidden_size,
            "num_layers": cfg.num_layers,
            "n_outputs": 1,
        },
        "state_dict": model.state_dict(),
        "features": [
            {"name": "co2", "unit": "ppm", "difference": True, "mean": prep.mean, "std": prep.std}
        ],
        "outputs": [{"name": "co2_next", "feature": 0}],
        "training": {
            "dataset": {**PROVENANCE, "weeks": len(prep.raw), "split": prep.split_info()},
            "config": {k: v for k, v in asdict(cfg).items() if k not in _NOT_RECORDED},
            "procedure": "AdamW on random windows of the training split (MSE of the next "
            "preprocessed week, clip_grad_norm_), early stopping on the validation MSE of the "
            "series streamed from 1958; test scored by streaming and autoregressive rollouts",
            "command": "seqserve train && seqserve export",
            "torch": str(torch.__version__),
        },
        "metrics": metrics,
        "history": history,
    }
    torch.save(checkpoint, out / CHECKPOINT)
    return checkpoint


def format_metrics(metrics: dict[str, object]) -> str:
    """The test table as text: MAE / RMSE in ppm per horizon and method."""
    lines = [f"{'horizon':>8} {'method':<16} {'MAE ppm':>9} {'RMSE ppm':>9}"]
    test = metrics["test"]
    assert isinstance(test, dict)
    for hkey, per in test.items():
        for name, s in per.items():
            lines.append(f"{hkey[1:]:>8} {name:<16} {s['mae']:>9.3f} {s['rmse']:>9.3f}")
    return "\n".join(lines)
