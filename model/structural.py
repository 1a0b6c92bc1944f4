"""The structural (UnobservedComponents) model as a linear recurrence that an ONNX graph carries.

The steady-state Kalman filter of the UC model, in difference form, is `s[t] = A s[t-1] + B dx[t]`
with the one-step forecast of the next difference `Z s[t]`. In float32 its own coordinates are
badly conditioned (the local linear trend makes A non-normal: random states grow transiently
tenfold), so the graph carries it in real modal coordinates, one scaled 2x2 rotation block per
harmonic and one scalar per real mode, each scaled to unit stationary spread; modes that the
forecast never reads are dropped. The graph gains an ONNX `RNN` node with the identity
(`Affine`, alpha 1, beta 0) activation, a state pair `s0 -> sn`, and its readout blended with the
LSTM head's: `y = lstm + g * (filter - lstm)`, in the model's preprocessed space, with the
filter's share g growing from 0 to `1 - w` as a session warms up (`add_filter`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

STATE_IN, STATE_OUT = "s0", "sn"


@dataclass(frozen=True)
class LinearFilter:
    """`s[t] = a s[t-1] + b dx[t]`, forecast of the next difference `z . s[t]` (raw units)."""

    a: np.ndarray  # [S, S]
    b: np.ndarray  # [S]
    z: np.ndarray  # [S]

    @property
    def size(self) -> int:
        return len(self.b)


def steady_filter(params: list[float], values: np.ndarray) -> LinearFilter:
    """The UC model's steady-state filter, gain taken after filtering `values` with `params`."""
    from seqserve.model.baselines import uc_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = uc_model(values).filter(np.asarray(params))
    ssm = res.model.ssm
    t = np.asarray(ssm["transition"]).reshape(ssm.k_states, ssm.k_states)
    z = np.asarray(ssm["design"]).reshape(1, ssm.k_states)
    k = res.filter_results.kalman_gain[:, :, -1]
    e = np.zeros((len(t), 1))
    e[0] = 1.0  # the filter of the level, differenced: a[t+1] - a[t] driven by dx
    return LinearFilter(a=t - k @ z, b=(k - e)[:, 0], z=z[0])


def modal(f: LinearFilter, tol: float = 1e-9) -> LinearFilter:
    """The same filter in real modal coordinates, unit stationary spread, unread modes dropped."""
    lam, vec = np.linalg.eig(f.a)
    blocks: list[np.ndarray] = []
    used: set[int] = set()
    for i in np.argsort(-np.abs(lam)):
        if i in used:
            continue
        used.add(int(i))
        if abs(lam[i].imag) > tol:
            j = min(
                (k for k in range(len(lam)) if k not in used),
                key=lambda k: abs(lam[k] - lam[i].conj()),
            )
            used.add(j)
            blocks.append(np.stack([vec[:, i].real, vec[:, i].imag], axis=1))
        else:
            blocks.append(vec[:, i].real[:, None])
    keep: list[int] = []
    p = np.concatenate(blocks, axis=1)
    pinv = np.linalg.inv(p)
    a, b, z = pinv @ f.a @ p, pinv @ f.b, f.z @ p
    k = 0
    for blk in blocks:
        sl = slice(k, k + blk.shape[1])
        radius = float(np.abs(np.linalg.eigvals(a[sl, sl])).max())
        spread = float(np.linalg.norm(b[sl])) / np.sqrt(1 - radius**2)
        a[sl, :] /= spread
        a[:, sl] *= spread
        b[sl] /= spread
        z[sl] *= spread
        k = sl.stop
    k = 0
    for blk in blocks:  # a mode the forecast reads (almost) nothing from is dropped
        sl = slice(k, k + blk.shape[1])
        if np.abs(z[sl]).max() > 1e-4 * np.abs(z).max():
            keep.extend(range(sl.start, sl.stop))
        k = sl.stop
    idx = np.array(keep)
    return LinearFilter(a=a[np.ix_(idx, idx)], b=b[idx], z=z[idx])


def run_filter(f: LinearFilter, dx: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float64 filter over `dx[B,T]` from `s[B,S]`: (next-difference forecasts [B,T], state)."""
    out = np.empty(dx.shape)
    for t in range(dx.shape[1]):
        s = s @ f.a.T + dx[:, t : t + 1] * f.b
        out[:, t] = s @ f.z
    return out, s


def ramp(rho: float, stages: int) -> tuple[np.ndarray, np.ndarray]:
    """A chain of `stages` first-order lags of a constant 1 (`m_k = rho m_k + (1 - rho)
    m_{k-1}`, `m_0 = 1`): from a zero state it rises smoothly from 0 to 1. (R, bias)."""
    r = np.eye(stages) * rho + np.eye(stages, k=-1) * (1 - rho)
    bias = np.zeros(stages)
    bias[0] = 1 - rho
    return r, bias


def add_filter(
    model: onnx.ModelProto,
    f: LinearFilter,
    mean: float,
    std: float,
    weight: float,
    warmup: tuple[float, int],
) -> onnx.ModelProto:
    """A copy of an exported LSTM graph (`x, h0, c0 -> y, hn, cn`) with the filter beside it.

    `y = lstm + g * (filter - lstm)`: the filter's forecast in preprocessed units (`x` is
    already preprocessed, so the filter sees `dx = x * std + mean`), blended in with weight
    `g = (1 - weight) * m`, where m is a warm-up ramp (`ramp(*warmup)`) carried in the same
    state: 0 for a new session, whose filter knows no season yet, rising to 1 over years.
    """
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    head_add = next(n for n in g.node if "y" in n.output)
    head_add.output[0] = "/head/y"
    n = f.size
    r_ramp, b_ramp = ramp(*warmup)
    k = len(b_ramp)
    r = np.zeros((n + k, n + k))
    r[:n, :n], r[n:, n:] = f.a, r_ramp
    w_in = np.concatenate([f.b * std, np.zeros(k)])[None, :, None]
    bias = np.concatenate([f.b * mean, b_ramp, np.zeros(n + k)])[None]
    readout = np.concatenate([f.z / std, np.zeros(k)])[:, None]
    gate = np.zeros((n + k, 1))
    gate[-1] = 1 - weight
    consts = {
        "filter.W": w_in,
        "filter.R": r[None],
        "filter.B": bias,
        "filter.Z": readout,
        "filter.z0": np.array([-mean / std]),
        "filter.G": gate,
    }
    g.initializer.extend(
        numpy_helper.from_array(v.astype(np.float32), name) for name, v in consts.items()
    )
    g.initializer.append(numpy_helper.from_array(np.array([1], np.int64), "filter.axes"))
    g.node.extend(
        [
            helper.make_node("Transpose", ["x"], ["/filter/x"], perm=[1, 0, 2]),
            helper.make_node(
                "RNN",
                ["/filter/x", "filter.W", "filter.R", "filter.B", "", STATE_IN],
                ["/filter/Y", STATE_OUT],
                name="/filter/RNN",
                hidden_size=n + k,
                activations=["Affine"],
                activation_alpha=[1.0],
                activation_beta=[0.0],
            ),
            helper.make_node("Squeeze", ["/filter/Y", "filter.axes"], ["/filter/sq"]),
            helper.make_node("Transpose", ["/filter/sq"], ["/filter/s"], perm=[1, 0, 2]),
            helper.make_node("MatMul", ["/filter/s", "filter.Z"], ["/filter/zs"]),
            helper.make_node("Add", ["/filter/zs", "filter.z0"], ["/filter/y"]),
            helper.make_node("MatMul", ["/filter/s", "filter.G"], ["/filter/gate"]),
            helper.make_node("Sub", ["/filter/y", "/head/y"], ["/filter/diff"]),
            helper.make_node("Mul", ["/filter/gate", "/filter/diff"], ["/filter/blend"]),
            helper.make_node("Add", ["/head/y", "/filter/blend"], ["y"], name="/combine"),
        ]
    )
    shape = [1, "batch", n + k]
    g.input.append(helper.make_tensor_value_info(STATE_IN, onnx.TensorProto.FLOAT, shape))
    g.output.append(helper.make_tensor_value_info(STATE_OUT, onnx.TensorProto.FLOAT, shape))
    onnx.checker.check_model(m)
    return m
