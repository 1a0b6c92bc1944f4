"""Experiment for issue #17 (not shipped code): the structural filter combined with the LSTM.

    python scripts/co2_combine.py [--model service/model_repository/co2/1]

Two kinds of combination, weights chosen on the validation years (1990-1994) only:
- servable: one model whose one-step output is `w * lstm + (1 - w) * filter`, rolled out
  jointly (each combined prediction fed back to both parts, as the server's forecast does);
- offline: separately rolled-out forecasts averaged with a weight per horizon (not servable:
  a graph does not know the horizon). Prints validation and test MAE at h = 1..13.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from seqserve.model.data import load_prepared
from seqserve.model.reference import ReferenceModel
from seqserve.model.structural import steady_filter

ROOT = Path(__file__).parents[1]
H = 13
WEIGHTS = np.round(np.arange(0.0, 1.0001, 0.05), 2)


def joint_paths(lstm, filt, w, x, mean, std, raw, origins):
    """Raw forecasts [len(origins), H] of the combined one-step model, rolled out jointly."""
    a, b, z = filt.a, filt.b, filt.z
    hs = lstm.hidden_size
    h, c, s = np.zeros((1, hs)), np.zeros((1, hs)), np.zeros((1, len(a)))
    keep = {int(o): None for o in origins}

    def step(xt, h, c, s):
        y, (hn, cn) = lstm.run(xt[:, None, None], [h[None], c[None]])
        s = s @ a.T + (xt * std + mean)[:, None] * b
        p = ((s @ z) - mean) / std
        return w * y[:, 0, 0] + (1 - w) * p, hn[0], cn[0], s

    for t in range(int(origins.max()) + 1):
        y, h, c, s = step(x[t : t + 1], h, c, s)
        if t in keep:
            keep[t] = (y, h, c, s)
    y = np.concatenate([keep[int(o)][0] for o in origins])
    h, c, s = (np.concatenate([keep[int(o)][i] for o in origins]) for i in (1, 2, 3))
    level = raw[origins].astype(np.float64)
    out = np.empty((len(origins), H))
    for k in range(H):
        level = y * std + mean + level
        out[:, k] = level
        if k + 1 < H:
            y, h, c, s = step(y, h, c, s)
    return out


def maes(paths, first, targets, raw):
    errs = [paths[targets - h - first, h - 1] - raw[targets] for h in range(1, H + 1)]
    return np.abs(np.array(errs)).mean(axis=1)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "service/model_repository/co2/1"))
    args = p.parse_args()
    prep = load_prepared()
    raw, n = prep.raw, len(prep.raw)
    params = json.loads((ROOT / "model/baselines_params.json").read_text())["uc"]
    filt = steady_filter(params, raw[: prep.val_start])
    lstm = ReferenceModel.from_onnx(Path(args.model) / "model.onnx")
    first = prep.val_start - H
    origins = np.arange(first, n - 1)
    vt, tt = np.arange(prep.val_start, prep.test_start), np.arange(prep.test_start, n)
    rows = {}
    for w in WEIGHTS:
        paths = joint_paths(lstm, filt, w, prep.inputs, prep.mean, prep.std, raw, origins)
        rows[float(w)] = (paths, maes(paths, first, vt, raw), maes(paths, first, tt, raw))
        v, t = rows[float(w)][1:]
        print(f"joint w={w:.2f} val {v[0]:.3f} {v[-1]:.3f} mean {v.mean():.5f}", end=" ")
        print(f"| test {t[0]:.3f} {t[-1]:.3f}", flush=True)
    best = min(rows, key=lambda w: rows[w][1].mean())
    v, t = rows[best][1:]
    print(f"best joint w={best} (val mean) val", " ".join(f"{e:.3f}" for e in v))
    print("  test", " ".join(f"{e:.3f}" for e in t))
    # offline: separately rolled-out lstm (w=1) and filter (w=0), a weight per horizon
    pl, pf = rows[1.0][0], rows[0.0][0]
    wh, vh, th = [], [], []
    for h in range(1, H + 1):

        def err(w, tg, h=h):
            f = w * pl[tg - h - first, h - 1] + (1 - w) * pf[tg - h - first, h - 1]
            return np.abs(f - raw[tg]).mean()

        wb = min(WEIGHTS, key=lambda w: err(w, vt))
        wh.append(float(wb))
        vh.append(err(wb, vt))
        th.append(err(wb, tt))
    print("offline per-horizon weights", wh)
    print("  val", " ".join(f"{e:.3f}" for e in vh))
    print("  test", " ".join(f"{e:.3f}" for e in th))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
