"""The structural (UnobservedComponents) model as a linear recurrence that an ONNX graph carries.

The steady-state Kalman filter of the UC model, in difference form, is `s[t] = A s[t-1] + B dx[t]`
with the one-step forecast of the next difference `Z s[t]`. In float32 its own coordinates are
badly conditioned (the local linear trend makes A non-normal: random states grow transiently
tenfold), so the graph carries it in real modal coordinates, one scaled 2x2 rotation block per
harmonic and one scalar per real mode, each scaled to unit stationary spread; modes that the
forecast never reads are dropped. The graph gains an ONNX `RNN` node with the identity
(`Affine`, alpha 1, beta 0) activation, a state pair `s0 -> sn`, and its readout added to the
LSTM head's: `y = w * lstm + (1 - w) * filter`, in the model's preprocessed space.
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


def add_filter(
    model: onnx.ModelProto, f: LinearFilter, mean: float, std: float, weight: float
) -> onnx.ModelProto:
    """A copy of an exported LSTM graph (`x, h0, c0 -> y, hn, cn`) with the filter beside it.

    The LSTM head is scaled by `weight` and the filter's forecast, in preprocessed units, by
    `1 - weight`; `x` is already preprocessed, so the filter sees `dx = x * std + mean`.
    """
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    inits = {t.name: t for t in g.initializer}
    head_add = next(n for n in g.node if "y" in n.output)
    matmul = next(n for n in g.node if n.output[0] in head_add.input and n.op_type == "MatMul")
    for name in [*matmul.input[1:], *(i for i in head_add.input if i in inits)]:
        arr = numpy_helper.to_array(inits[name]) * np.float32(weight)
        inits[name].CopyFrom(numpy_helper.from_array(arr.astype(np.float32), name))
    head_add.output[0] = "/head/y"
    n = f.size
    w_in = (f.b * std)[None, :, None]
    bias = np.concatenate([f.b * mean, np.zeros(n)])[None]
    rw = (1 - weight) / std
    consts = {
        "filter.W": w_in,
        "filter.R": f.a[None],
        "filter.B": bias,
        "filter.Z": (f.z * rw)[:, None],
        "filter.z0": np.array([-mean * (1 - weight) / std]),
    }
    g.initializer.extend(
        numpy_helper.from_array(v.astype(np.float32), k) for k, v in consts.items()
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
                hidden_size=n,
                activations=["Affine"],
                activation_alpha=[1.0],
                activation_beta=[0.0],
            ),
            helper.make_node("Squeeze", ["/filter/Y", "filter.axes"], ["/filter/sq"]),
            helper.make_node("Transpose", ["/filter/sq"], ["/filter/s"], perm=[1, 0, 2]),
            helper.make_node("MatMul", ["/filter/s", "filter.Z"], ["/filter/zs"]),
            helper.make_node("Add", ["/filter/zs", "filter.z0"], ["/filter/y"]),
            helper.make_node("Add", ["/head/y", "/filter/y"], ["y"], name="/combine"),
        ]
    )
    g.input.append(helper.make_tensor_value_info(STATE_IN, onnx.TensorProto.FLOAT, [1, "batch", n]))
    g.output.append(
        helper.make_tensor_value_info(STATE_OUT, onnx.TensorProto.FLOAT, [1, "batch", n])
    )
    onnx.checker.check_model(m)
    return m
