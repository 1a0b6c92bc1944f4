"""An independent NumPy LSTM/GRU, written from the cell equations, reading weights from ONNX.

This is the project's ground truth: PyTorch, ONNX Runtime and the server are all checked against
it. It reads the weights of the native ONNX `LSTM`/`GRU` nodes and of the linear head from the
`.onnx` file itself and computes in float64, so it shares no code with any runtime it checks.
It must never import torch (a test asserts it).

ONNX stores the gates of an LSTM in the order i, o, f, c and those of a GRU in the order z, r, h,
with two bias vectors per gate (`Wb` for the input projection, `Rb` for the recurrent one):

    LSTM                                   GRU
    i = σ(x Wi' + h Ri' + Wbi + Rbi)       z = σ(x Wz' + h Rz' + Wbz + Rbz)
    o = σ(x Wo' + h Ro' + Wbo + Rbo)       r = σ(x Wr' + h Rr' + Wbr + Rbr)
    f = σ(x Wf' + h Rf' + Wbf + Rbf)       n = tanh(x Wh' + r * (h Rh' + Rbh) + Wbh)  # lbr=1
    g = tanh(x Wc' + h Rc' + Wbc + Rbc)    n = tanh(x Wh' + (r * h) Rh' + Rbh + Wbh)  # lbr=0
    c = f * c + i * g                      h = (1 - z) * n + z * h
    h = o * tanh(c)

Stacked layers are consecutive recurrent nodes; the head is the MatMul (+ Add) or Gemm that
follows the last one. A graph may also carry a linear recurrence beside them (an ONNX `RNN`
node with the identity `Affine` activation, e.g. the structural filter of `model.structural`):

    s = alpha * (x W' + s R' + Wb + Rb) + beta,   r = s z + z0
    y = head + r,  or with a gate:  y = head + (s . gate) * (r - head)

its state is one more state input, after the cell's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from seqserve.model.onnx_graph import GraphReader, Layer, LinearBranch, UnsupportedGraph

__all__ = ["Layer", "LinearBranch", "ReferenceModel", "UnsupportedGraph", "gru_layer", "lstm_layer"]


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-v))


def lstm_layer(
    layer: Layer, x: np.ndarray, h: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run one LSTM layer over `x[B,T,I]` from `h[B,H]`, `c[B,H]`; returns `(out[B,T,H], h, c)`."""
    hs = layer.hidden_size
    wi, wo, wf, wc = np.split(layer.w, 4)
    ri, ro, rf, rc = np.split(layer.r, 4)
    wbi, wbo, wbf, wbc = np.split(layer.wb, 4)
    rbi, rbo, rbf, rbc = np.split(layer.rb, 4)
    # Input projections of every timestep at once; the recurrence must stay sequential.
    xi, xo, xf, xc = (x @ w.T + b for w, b in ((wi, wbi), (wo, wbo), (wf, wbf), (wc, wbc)))
    out = np.empty((x.shape[0], x.shape[1], hs), dtype=x.dtype)
    for t in range(x.shape[1]):
        i = _sigmoid(xi[:, t] + h @ ri.T + rbi)
        o = _sigmoid(xo[:, t] + h @ ro.T + rbo)
        f = _sigmoid(xf[:, t] + h @ rf.T + rbf)
        g = np.tanh(xc[:, t] + h @ rc.T + rbc)
        c = f * c + i * g
        h = o * np.tanh(c)
        out[:, t] = h
    return out, h, c


def gru_layer(layer: Layer, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run one GRU layer over `x[B,T,I]` from `h[B,H]`; returns `(out[B,T,H], h)`."""
    hs = layer.hidden_size
    wz, wr, wh = np.split(layer.w, 3)
    rz, rr, rh = np.split(layer.r, 3)
    wbz, wbr, wbh = np.split(layer.wb, 3)
    rbz, rbr, rbh = np.split(layer.rb, 3)
    xz, xr, xh = (x @ w.T + b for w, b in ((wz, wbz), (wr, wbr), (wh, wbh)))
    out = np.empty((x.shape[0], x.shape[1], hs), dtype=x.dtype)
    for t in range(x.shape[1]):
        z = _sigmoid(xz[:, t] + h @ rz.T + rbz)
        r = _sigmoid(xr[:, t] + h @ rr.T + rbr)
        if layer.linear_before_reset:
            n = np.tanh(xh[:, t] + r * (h @ rh.T + rbh))
        else:
            n = np.tanh(xh[:, t] + (r * h) @ rh.T + rbh)
        h = (1 - z) * n + z * h
        out[:, t] = h
    return out, h


def linear_branch(
    branch: LinearBranch, x: np.ndarray, s: np.ndarray, dtype: type[np.floating]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the linear recurrence over `x[B,T,I]` from `s[B,S]`; returns `(readout[B,T,O],
    gate[B,T,1] (ones without a gate), s)`."""
    w, r, bias = (v.astype(dtype) for v in (branch.w, branch.r, branch.bias))
    xw = x @ w.T + bias
    states = np.empty((x.shape[0], x.shape[1], branch.size), dtype=dtype)
    for t in range(x.shape[1]):
        s = branch.alpha * (xw[:, t] + s @ r.T) + branch.beta
        states[:, t] = s
    readout = states @ branch.z.astype(dtype) + branch.z0.astype(dtype)
    if branch.gate is None:
        return readout, np.ones(states.shape[:2] + (1,), dtype=dtype), s
    return readout, states @ branch.gate.astype(dtype)[:, None], s


@dataclass(frozen=True)
class ReferenceModel:
    """A stack of recurrent layers plus a linear head, as read from an ONNX file.

    `state_inputs` names the graph inputs that carry the state (`["h0", "c0"]` for an LSTM,
    `["h0"]` for a GRU, then the linear branch's if there is one) in the order `run` takes and
    returns the states.
    """

    cell: str
    layers: tuple[Layer, ...]
    head_w: np.ndarray  # [H, O]
    head_b: np.ndarray  # [O]
    data_input: str
    state_inputs: tuple[str, ...]
    linear: LinearBranch | None = None

    @classmethod
    def from_onnx(cls, path: str | Path | onnx.ModelProto) -> ReferenceModel:
        model = path if isinstance(path, onnx.ModelProto) else onnx.load(str(path))
        fields = GraphReader(model.graph).read()
        if fields["linear"] is not None:
            fields["state_inputs"] = (*fields["state_inputs"], fields["linear"].state_input)
        return cls(**fields)

    @property
    def state_shapes(self) -> dict[str, tuple[int, int]]:
        """(layers, size) of each state input."""
        shapes = dict.fromkeys(self.state_inputs, (self.num_layers, self.hidden_size))
        if self.linear is not None:
            shapes[self.linear.state_input] = (1, self.linear.size)
        return shapes

    @property
    def n_features(self) -> int:
        return self.layers[0].input_size

    @property
    def hidden_size(self) -> int:
        return self.layers[0].hidden_size

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def n_outputs(self) -> int:
        return self.head_w.shape[1]

    def zero_states(self, batch: int) -> list[np.ndarray]:
        return [np.zeros((n, batch, size)) for n, size in self.state_shapes.values()]

    def run(
        self,
        x: np.ndarray,
        states: list[np.ndarray] | None = None,
        dtype: type[np.floating] = np.float64,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """`x[B,T,F]`, states `[L,B,H]` each (zeros if None) -> `(y[B,T,O], new states)`.

        Computes in float64; `dtype=np.float32` shows how far float32 roundoff alone drifts.
        """
        x = np.asarray(x, dtype=dtype)
        if x.ndim != 3 or x.shape[2] != self.n_features:
            raise ValueError(f"x must be [B, T, {self.n_features}], got {x.shape}")
        if states is None:
            states = self.zero_states(x.shape[0])
        if len(states) != len(self.state_inputs):
            raise ValueError(f"expected {len(self.state_inputs)} state tensors, got {len(states)}")
        states = [np.asarray(s, dtype=dtype) for s in states]
        new = [np.empty_like(s) for s in states]
        seq = x
        for li, layer in enumerate(self.layers):
            layer = layer.astype(dtype)
            if self.cell == "lstm":
                seq, new[0][li], new[1][li] = lstm_layer(layer, seq, states[0][li], states[1][li])
            else:
                seq, new[0][li] = gru_layer(layer, seq, states[0][li])
        y = seq @ self.head_w.astype(dtype) + self.head_b.astype(dtype)
        if self.linear is not None:
            readout, gate, new[-1][0] = linear_branch(self.linear, x, states[-1][0], dtype)
            y = y + gate * (readout - y) if self.linear.gate is not None else y + readout
        return y, new
