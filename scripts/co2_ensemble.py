"""Experiment for issue #17 (not shipped code): K seed runs merged into one block-diagonal LSTM.

    python scripts/co2_ensemble.py RUN_DIR [RUN_DIR ...]

The merged network is an ordinary `LSTMForecaster` with hidden size K*H (each member's gates in
its own block, the head averaging the members), so it exports, verifies and serves unchanged;
its state is the members' states concatenated. Prints test MAE at h = 1..13.
"""

from __future__ import annotations

import sys

import torch
from seqserve.model import lstm
from seqserve.model.data import load_prepared
from seqserve.model.evaluate import evaluate_test
from seqserve.model.export import load_checkpoint


def merge(models: list[lstm.LSTMForecaster]) -> lstm.LSTMForecaster:
    k, h = len(models), models[0].hidden_size
    out = lstm.LSTMForecaster(1, k * h, 1, 1)
    w_ih = torch.zeros(4 * k * h, 1)
    w_hh = torch.zeros(4 * k * h, k * h)
    b_ih = torch.zeros(4 * k * h)
    b_hh = torch.zeros(4 * k * h)
    for m, model in enumerate(models):
        r = model.rnn
        for g in range(4):
            rows = slice(g * k * h + m * h, g * k * h + (m + 1) * h)
            src = slice(g * h, (g + 1) * h)
            w_ih[rows] = r.weight_ih_l0[src]
            w_hh[rows, m * h : (m + 1) * h] = r.weight_hh_l0[src]
            b_ih[rows] = r.bias_ih_l0[src]
            b_hh[rows] = r.bias_hh_l0[src]
    with torch.no_grad():
        out.rnn.weight_ih_l0.copy_(w_ih)
        out.rnn.weight_hh_l0.copy_(w_hh)
        out.rnn.bias_ih_l0.copy_(b_ih)
        out.rnn.bias_hh_l0.copy_(b_hh)
        out.head.weight.copy_(torch.cat([m.head.weight for m in models], 1) / k)
        out.head.bias.copy_(torch.stack([m.head.bias for m in models]).mean(0))
    return out.eval()


def main() -> int:
    torch.set_num_threads(1)
    prep = load_prepared()
    models = [load_checkpoint(f"{d}/checkpoint.pt")[0] for d in sys.argv[1:]]
    for d, m in zip(sys.argv[1:], models, strict=True):
        r = evaluate_test(m, prep, 13)
        print(d, " ".join(f"{r.horizons[h]['model'].mae:.3f}" for h in range(1, 14)))
    r = evaluate_test(merge(models), prep, 13)
    print("ensemble", " ".join(f"{r.horizons[h]['model'].mae:.3f}" for h in range(1, 14)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
