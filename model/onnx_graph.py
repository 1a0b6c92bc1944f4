"""Reading an exported recurrent model out of its ONNX graph: the native `LSTM`/`GRU` nodes
(their weights, in ONNX layout), which graph inputs carry the state, and the linear head; and
optionally a linear recurrence beside them (an `RNN` node with the identity activation, e.g. a
structural filter) whose readout is added to the head's output.
Shared by the NumPy reference (`model.reference`) and nothing else; it imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

RECURRENT_OPS = {"LSTM": "lstm", "GRU": "gru"}
# Ops that pass a tensor through unchanged in value (only layout) between a graph input and a
# recurrent node, or between a recurrent node and the head.
_PASSTHROUGH = {
    "Identity",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Reshape",
    "Cast",
    "Slice",
    "Gather",
}


class UnsupportedGraph(ValueError):
    """The ONNX graph is not a stack of native recurrent layers plus a linear head."""


@dataclass(frozen=True)
class Layer:
    """One recurrent layer in ONNX layout (single direction), as float64."""

    w: np.ndarray  # [gates*H, I]
    r: np.ndarray  # [gates*H, H]
    wb: np.ndarray  # [gates*H]
    rb: np.ndarray  # [gates*H]
    linear_before_reset: bool = False  # GRU only

    @property
    def hidden_size(self) -> int:
        return self.r.shape[1]

    def astype(self, dtype: type[np.floating]) -> Layer:
        arrays = {k: getattr(self, k).astype(dtype) for k in ("w", "r", "wb", "rb")}
        return replace(self, **arrays)

    @property
    def input_size(self) -> int:
        return self.w.shape[1]


@dataclass(frozen=True)
class LinearBranch:
    """`s[t] = alpha * (x[t] W' + s[t-1] R' + bias) + beta`, read out as `r = s[t] z + z0` and
    added to the head's output h (`y = h + r`), or, with a gate, blended with it by a weight
    the state carries: `y = h + (s[t] . gate) * (r - h)`. Its state is the graph input
    `state_input`, `[1, B, S]`."""

    w: np.ndarray  # [S, I]
    r: np.ndarray  # [S, S]
    bias: np.ndarray  # [S]: Wb + Rb
    alpha: float
    beta: float
    z: np.ndarray  # [S, O]
    z0: np.ndarray  # [O]
    gate: np.ndarray | None  # [S]: with it, y = head + (s . gate) * (readout - head)
    state_input: str

    @property
    def size(self) -> int:
        return self.r.shape[0]


class GraphReader:
    """Finds the recurrent nodes, their weights and the head in an exported graph."""

    def __init__(self, graph: onnx.GraphProto):
        self.graph = graph
        self.producer = {o: n for n in graph.node for o in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.inits = {t.name: t for t in graph.initializer}
        self.graph_inputs = {i.name for i in graph.input} - set(self.inits)

    def const(self, name: str) -> np.ndarray | None:
        """The value of a tensor that is an initializer or a Constant (through Identity)."""
        if name in self.inits:
            return numpy_helper.to_array(self.inits[name])
        node = self.producer.get(name)
        if node is None:
            return None
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
            return None
        if node.op_type == "Identity":
            return self.const(node.input[0])
        return None

    def weight(self, node: onnx.NodeProto, index: int, what: str) -> np.ndarray:
        name = node.input[index] if index < len(node.input) else ""
        value = self.const(name) if name else None
        if value is None:
            raise UnsupportedGraph(f"{node.op_type} node {node.name!r}: {what} is not a constant")
        return value.astype(np.float64)

    def source_input(self, name: str) -> tuple[str, int | None]:
        """Walk back through pass-through ops to a graph input; also report a layer slice index."""
        index: int | None = None
        while name not in self.graph_inputs:
            node = self.producer.get(name)
            if node is None or node.op_type not in _PASSTHROUGH:
                op = node.op_type if node is not None else "nothing"
                raise UnsupportedGraph(f"tensor {name!r} comes from {op}, not from a graph input")
            if node.op_type in ("Slice", "Gather"):
                start = self.const(node.input[1])
                if start is None or start.size != 1:
                    raise UnsupportedGraph(f"{node.op_type} {node.name!r} has a non-constant index")
                index = int(start.reshape(-1)[0])
            name = node.input[0]
        return name, index

    def read(self) -> dict[str, Any]:
        """The `ReferenceModel` fields: cell, layers, head_w, head_b, data_input, state_inputs."""
        rec = [n for n in self.graph.node if n.op_type in RECURRENT_OPS]
        if not rec:
            raise UnsupportedGraph("graph has no native LSTM or GRU node")
        cells = {RECURRENT_OPS[n.op_type] for n in rec}
        if len(cells) != 1:
            raise UnsupportedGraph(f"graph mixes recurrent cell types {sorted(cells)}")
        cell = cells.pop()
        n_states = 2 if cell == "lstm" else 1
        layers, state_inputs = [], None
        for li, node in enumerate(rec):
            layers.append(self.layer(node))
            names = []
            for k in range(n_states):
                state = node.input[5 + k] if len(node.input) > 5 + k else ""
                if not state:
                    raise UnsupportedGraph(f"layer {li} has no initial state input {5 + k}")
                src, idx = self.source_input(state)
                if idx not in (li, None) or (idx is None and len(rec) > 1):
                    raise UnsupportedGraph(f"layer {li} takes its state from slice {idx} of {src}")
                names.append(src)
            if state_inputs is not None and names != state_inputs:
                raise UnsupportedGraph(f"layer {li} reads state from {names}, not {state_inputs}")
            state_inputs = names
            if li > 0 and self.upstream_recurrent(node.input[0]) is not rec[li - 1]:
                raise UnsupportedGraph(f"layer {li} does not consume layer {li - 1}'s output")
        data_input, _ = self.source_input(rec[0].input[0])
        head_w, head_b, head_out = self.head(rec[-1], layers[-1].hidden_size)
        linear = self.linear_branch(data_input, head_out)
        return {
            "linear": linear,
            "cell": cell,
            "layers": tuple(layers),
            "head_w": head_w,
            "head_b": head_b,
            "data_input": data_input,
            "state_inputs": tuple(state_inputs or ()),
        }

    def layer(self, node: onnx.NodeProto) -> Layer:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        direction = attrs.get("direction", b"forward")
        if direction not in (b"forward", "forward"):
            raise UnsupportedGraph(f"{node.op_type} {node.name!r}: direction {direction!r}")
        for unsupported in ("activations", "clip", "layout", "input_forget"):
            if attrs.get(unsupported) not in (None, 0):
                raise UnsupportedGraph(f"{node.op_type} {node.name!r}: {unsupported} unsupported")
        if len(node.input) > 4 and node.input[4]:
            raise UnsupportedGraph(f"{node.op_type} {node.name!r}: sequence_lens unsupported")
        if len(node.input) > 7 and node.input[7]:
            raise UnsupportedGraph(f"LSTM {node.name!r}: peephole weights unsupported")
        w = self.weight(node, 1, "W")[0]
        r = self.weight(node, 2, "R")[0]
        gates = 4 if node.op_type == "LSTM" else 3
        hs = r.shape[1]
        if w.shape[0] != gates * hs or r.shape[0] != gates * hs:
            raise UnsupportedGraph(f"{node.op_type} {node.name!r}: W/R shapes {w.shape}, {r.shape}")
        if len(node.input) > 3 and node.input[3]:
            b = self.weight(node, 3, "B")[0]
        else:
            b = np.zeros(2 * gates * hs)
        return Layer(
            w=w,
            r=r,
            wb=b[: gates * hs],
            rb=b[gates * hs :],
            linear_before_reset=bool(attrs.get("linear_before_reset", 0)),
        )

    def upstream_recurrent(self, name: str) -> onnx.NodeProto | None:
        node = self.producer.get(name)
        while node is not None and node.op_type in _PASSTHROUGH:
            node = self.producer.get(node.input[0])
        return node if node is not None and node.op_type in RECURRENT_OPS else None

    def linear_branch(self, data_input: str, head_out: str) -> LinearBranch | None:
        """The identity-activation `RNN` node fed by the data input, if any, and its readout,
        which must meet the head's output in one `Add`."""
        nodes = [n for n in self.graph.node if n.op_type == "RNN"]
        if not nodes:
            return None
        if len(nodes) > 1:
            raise UnsupportedGraph(f"graph has {len(nodes)} RNN nodes; at most one is supported")
        node = nodes[0]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("activations") not in ([b"Affine"], ["Affine"]):
            raise UnsupportedGraph(f"RNN {node.name!r}: only the Affine (linear) activation")
        if attrs.get("direction", b"forward") not in (b"forward", "forward"):
            raise UnsupportedGraph(f"RNN {node.name!r}: direction {attrs['direction']!r}")
        for unsupported in ("clip", "layout"):
            if attrs.get(unsupported) not in (None, 0):
                raise UnsupportedGraph(f"RNN {node.name!r}: {unsupported} unsupported")
        if len(node.input) > 4 and node.input[4]:
            raise UnsupportedGraph(f"RNN {node.name!r}: sequence_lens unsupported")
        if self.source_input(node.input[0])[0] != data_input:
            raise UnsupportedGraph(f"RNN {node.name!r} does not read the data input")
        if len(node.input) < 6 or not node.input[5]:
            raise UnsupportedGraph(f"RNN {node.name!r} has no initial state input")
        state, idx = self.source_input(node.input[5])
        if idx not in (0, None):
            raise UnsupportedGraph(f"RNN {node.name!r} takes its state from slice {idx}")
        w, r = self.weight(node, 1, "W")[0], self.weight(node, 2, "R")[0]
        size = r.shape[0]
        b = self.weight(node, 3, "B")[0] if len(node.input) > 3 and node.input[3] else None
        bias = np.zeros(size) if b is None else b[:size] + b[size:]
        readouts = [self.affine_node(n, size) for n in self.users_after(node.output[0])]
        z, z0, gate = self.join(readouts, head_out)
        return LinearBranch(
            w=w,
            r=r,
            bias=bias,
            alpha=float(attrs.get("activation_alpha", [1.0])[0]),
            beta=float(attrs.get("activation_beta", [0.0])[0]),
            z=z,
            z0=z0,
            gate=gate,
            state_input=state,
        )

    def join(
        self, readouts: list[tuple[np.ndarray, np.ndarray, str]], head_out: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """How the branch's readouts meet the head's output `h`: `Add(h, r)` (one readout), or
        `Add(h, Mul(g, Sub(r, h)))` (a readout r and a gate g, each a MatMul of the state)."""
        users = {n.op_type: n for n in self.consumers.get(head_out, [])}
        if len(readouts) == 1:
            z, z0, out = readouts[0]
            add = users.get("Add")
            if len(users) != 1 or add is None or set(add.input) != {head_out, out}:
                raise UnsupportedGraph(
                    f"the RNN's readout {out!r} is not added to the head's output"
                )
            return z, z0, None
        sub, add = users.get("Sub"), users.get("Add")
        if len(readouts) != 2 or len(users) != 2 or sub is None or add is None:
            raise UnsupportedGraph("the RNN's readouts do not meet the head as Add or gated Add")
        if list(sub.input)[1] != head_out:
            raise UnsupportedGraph("the gated readout must be Sub(readout, head)")
        by_out = {out: (w, b) for w, b, out in readouts}
        (z, z0), gate_out = by_out.get(sub.input[0], (None, None)), None
        mul = self.consumers.get(sub.output[0], [])
        if z is None or len(mul) != 1 or mul[0].op_type != "Mul":
            raise UnsupportedGraph("the gated readout is not Mul(gate, Sub(readout, head))")
        gate_out = next((i for i in mul[0].input if i != sub.output[0]), "")
        if gate_out not in by_out or gate_out == sub.input[0]:
            raise UnsupportedGraph("the gate is not a MatMul of the RNN's state")
        g, g0 = by_out[gate_out]
        if g.shape[1] != 1 or np.any(g0 != 0) or set(add.input) != {head_out, mul[0].output[0]}:
            raise UnsupportedGraph("the gate must be one bias-free channel, added to the head")
        return z, z0, g[:, 0]

    def head(self, last: onnx.NodeProto, hidden: int) -> tuple[np.ndarray, np.ndarray, str]:
        """The affine map after the last recurrent node's `Y` (weights, bias, output name)."""
        return self.affine_after(last.output[0], hidden)

    def affine_after(self, name: str, hidden: int) -> tuple[np.ndarray, np.ndarray, str]:
        """The MatMul (+ Add) or Gemm after a recurrent node's output (through pass-throughs)."""
        users = self.users_after(name)
        if len(users) != 1:
            raise UnsupportedGraph(f"recurrent output {name!r} has {len(users)} consumers")
        return self.affine_node(users[0], hidden)

    def users_after(self, name: str) -> list[onnx.NodeProto]:
        """The consumers of a tensor, past a chain of single-consumer pass-through ops."""
        while True:
            users = self.consumers.get(name, [])
            if len(users) != 1 or users[0].op_type not in _PASSTHROUGH:
                return users
            name = users[0].output[0]

    def affine_node(self, node: onnx.NodeProto, hidden: int) -> tuple[np.ndarray, np.ndarray, str]:
        """A MatMul (+ Add of a constant) or Gemm: its weight, bias and output name."""
        out = node.output[0]
        if node.op_type == "Gemm":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            w = self.weight(node, 1, "head weight")
            w = w.T if attrs.get("transB", 0) else w
            w = w * attrs.get("alpha", 1.0)
            b = self.weight(node, 2, "head bias") * attrs.get("beta", 1.0)
        elif node.op_type == "MatMul":
            w = self.weight(node, 1, "head weight")
            b = np.zeros(w.shape[1])
            adds = self.consumers.get(node.output[0], [])
            if len(adds) == 1 and adds[0].op_type == "Add":
                other = [i for i in adds[0].input if i != node.output[0]]
                bias = self.const(other[0]) if len(other) == 1 else None
                if bias is None:
                    raise UnsupportedGraph("the head's Add has no constant bias")
                b = bias.astype(np.float64).reshape(-1)
                out = adds[0].output[0]
        else:
            raise UnsupportedGraph(
                f"expected the head (MatMul/Gemm) after the RNN, got {node.op_type}"
            )
        if w.ndim != 2 or w.shape[0] != hidden or b.shape != (w.shape[1],):
            raise UnsupportedGraph(f"head shapes W{w.shape} b{b.shape} misfit hidden size {hidden}")
        return w, b, out
