"""Experiments for issue #17 (not shipped code): a structural filter plus an LSTM residual.

Run: python scripts/co2_experiments.py [--epochs N] [--rollout-weight W] ...
Prints test MAE at h=1..13 (same protocol as model/evaluate.py) and validation MAE.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from seqserve.model import baselines as B
from seqserve.model.data import load_prepared
from torch import nn

ROOT = Path(__file__).parents[1]


def steady_filter(params, values):
    """(A, K-e, Z) of the steady-state innovations filter of the UC model, in difference form."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = B.uc_model(values).filter(np.asarray(params))
    ssm = res.model.ssm
    T = np.asarray(ssm["transition"]).reshape(ssm.k_states, ssm.k_states)
    Z = np.asarray(ssm["design"]).reshape(1, ssm.k_states)
    K = res.filter_results.kalman_gain[:, :, -1]
    # check K's convention: a[t+1] = T a[t] + K v[t]
    t = len(values) - 2
    v = values[t] - (Z @ res.predicted_state[:, t])[0]
    a1 = T @ res.predicted_state[:, t] + K[:, 0] * v
    assert np.allclose(a1, res.predicted_state[:, t + 1]), "gain convention"
    e = np.zeros(len(T))
    e[0] = 1.0
    A = T - K @ Z
    return A, K[:, 0] - e, Z[0]


class Hybrid(nn.Module):
    def __init__(self, A, Bv, Z, mean, std, hidden, learn_struct):
        super().__init__()

        def f(a):
            return torch.tensor(a, dtype=torch.float32)

        mk = (lambda a: nn.Parameter(f(a))) if learn_struct else f
        self.A, self.B, self.Z = mk(A), mk(Bv), mk(Z)
        self.mean, self.std = mean, std
        self.hidden = hidden
        if hidden:
            self.rnn = nn.LSTM(1, hidden, batch_first=True)
            self.head = nn.Linear(hidden, 1)
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def struct(self, x, s):
        # s[B, S]; x[B, T]  (model space) -> preds[B, T] (model space), s
        outs = []
        for t in range(x.shape[1]):
            dy = x[:, t] * self.std + self.mean
            s = s @ self.A.T + dy[:, None] * self.B
            outs.append(((s @ self.Z) - self.mean) / self.std)
        return torch.stack(outs, 1), s

    def forward(self, x, s, h, c):
        ys, s = self.struct(x[..., 0], s)
        y = ys[..., None]
        if self.hidden:
            out, (h, c) = self.rnn(x, (h, c))
            y = y + self.head(out)
        return y, s, h, c


def rollout_eval(model, prep, origins, horizon):
    """Stream the series once (states at every step) and roll out from each origin."""
    with torch.no_grad():
        x = torch.tensor(prep.inputs, dtype=torch.float32).reshape(1, -1, 1)
        S = model.A.shape[0]
        s = torch.zeros(1, S)
        h = torch.zeros(1, 1, model.hidden or 1)
        c = torch.zeros_like(h)
        ys, ss, hs, cs = [], [], [], []
        for t in range(x.shape[1]):
            y, s, h, c = model(x[:, t : t + 1], s, h, c)
            ys.append(float(y[0, 0, 0]))
            ss.append(s[0])
            hs.append(h[:, 0])
            cs.append(c[:, 0])
        ys = np.array(ys)
        s = torch.stack([ss[o] for o in origins])
        h = torch.stack([hs[o] for o in origins], 1)
        c = torch.stack([cs[o] for o in origins], 1)
        step = torch.tensor(ys[origins], dtype=torch.float32).reshape(-1, 1, 1)
        level = prep.raw[origins].copy()
        out = np.empty((len(origins), horizon))
        for k in range(horizon):
            level = prep.to_raw(step[:, 0, 0].double().numpy(), level)
            out[:, k] = level
            step, s, h, c = model(step, s, h, c)
    return out, ys


def stream_struct_states(model, prep):
    with torch.no_grad():
        x = torch.tensor(prep.inputs, dtype=torch.float32).reshape(1, -1)
        S = model.A.shape[0]
        s = torch.zeros(1, S)
        states = []
        for t in range(x.shape[1]):
            states.append(s[0].clone())
            _, s = model.struct(x[:, t : t + 1], s)
        return torch.stack(states)  # state BEFORE step t


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--window", type=int, default=104)
    p.add_argument("--stride", type=int, default=4)
    p.add_argument("--roll", type=int, default=13)
    p.add_argument("--rw", type=float, default=1.0, help="rollout loss weight")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--wd", type=float, default=1.0)
    p.add_argument("--learn-struct", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fit-end", default="train", choices=["train", "val"])
    p.add_argument("--save")
    a = p.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    prep = load_prepared()
    params = json.loads((ROOT / "model" / "baselines_params.json").read_text())["uc"]
    end = prep.val_start if a.fit_end == "train" else prep.test_start
    A, Bv, Z = steady_filter(params, prep.raw[: prep.val_start])
    model = Hybrid(A, Bv, Z, prep.mean, prep.std, a.hidden, a.learn_struct)
    n = len(prep.raw)
    targets = np.arange(prep.test_start, n)
    first = prep.test_start - 13
    origins = np.arange(first, n - 1)
    vt = np.arange(prep.val_start, prep.test_start)
    vfirst = prep.val_start - 13
    vorigins = np.arange(vfirst, prep.test_start - 1)

    def report(tag):
        paths, _ = rollout_eval(model, prep, np.concatenate([vorigins, origins]), 13)
        vp, tp = paths[: len(vorigins)], paths[len(vorigins) :]
        vmae = [np.abs(vp[vt - h - vfirst, h - 1] - prep.raw[vt]).mean() for h in range(1, 14)]
        tmae = [
            np.abs(tp[targets - h - first, h - 1] - prep.raw[targets]).mean() for h in range(1, 14)
        ]
        print(
            tag,
            "val",
            " ".join(f"{v:.3f}" for v in vmae),
            "| test",
            " ".join(f"{v:.3f}" for v in tmae),
            flush=True,
        )
        return np.mean(vmae), tmae

    report("init")
    if a.hidden == 0 and not a.learn_struct:
        return
    xs = torch.tensor(prep.inputs, dtype=torch.float32)
    W, R = a.window, a.roll
    starts = np.arange(0, end - W - R, a.stride)
    gen = torch.Generator().manual_seed(a.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.wd)
    best_v, best_sd = float("inf"), None
    for ep in range(a.epochs):
        t0 = time.time()
        sstates = stream_struct_states(model, prep)
        order = torch.randperm(len(starts), generator=gen)
        for b in range(0, len(starts), 32):
            idx = starts[order[b : b + 32].numpy()]
            ii = idx[:, None] + np.arange(W + R + 1)[None, :]
            seq = xs[ii]  # [B, W+R+1]
            x = seq[:, :W, None]
            y1 = seq[:, 1 : W + 1, None]
            s0 = sstates[idx]
            h0 = torch.rand(1, len(idx), a.hidden, generator=gen) * 2 - 1
            c0 = torch.rand(1, len(idx), a.hidden, generator=gen) * 2 - 1
            pred, s, h, c = model(x, s0, h0, c0)
            loss = ((pred - y1) ** 2).mean()
            if a.rw > 0:
                step = pred[:, -1:]
                rp = [step]
                for _k in range(R - 1):
                    step, s, h, c = model(step, s, h, c)
                    rp.append(step)
                rp = torch.cat(rp, 1)[..., 0]  # predicted x' for W+1..W+R
                true = seq[:, W + 1 : W + R + 1]
                cum = torch.cumsum(rp - true, 1)  # level error / std
                loss = loss + a.rw * (cum**2).mean() / R
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        v, t = report(f"ep{ep + 1} {time.time() - t0:.0f}s")
        if v < best_v:
            best_v, best_sd, best_ep = (
                v,
                {k: x.clone() for k, x in model.state_dict().items()},
                ep + 1,
            )
    model.load_state_dict(best_sd)
    print("best epoch", best_ep)
    report("best")
    if a.save:
        torch.save({"sd": best_sd, "args": vars(a)}, a.save)


if __name__ == "__main__":
    main()
