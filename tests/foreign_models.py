"""Recurrent ONNX graphs unlike the ones `seqserve export` writes, for `seqserve import` tests.

Built with `onnx.helper` (no torch): other tensor names, batch-major, time-major or one step per
call, several data inputs concatenated in the graph, `[L, B, H]` or `[B, H]` states, and the
kinds the importer must refuse (a reverse recurrence, a reduction over time, a state output not
fed by the recurrence, a dynamic hidden size). Weights are named `W{layer}`, `R{layer}`,
`B{layer}`, `head_w`, `head_b` so tests can run the same equations in NumPy.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
GATES = {"LSTM": 4, "GRU": 3}


def build(
    op: str = "LSTM",
    inputs: Sequence[tuple[str, int]] = (("input_seq", 3),),
    hidden: int = 8,
    layers: int = 1,
    n_out: int = 2,
    layout: str = "batch_major",
    dims: tuple[str, str] = ("batch", "time"),
    state_names: Sequence[tuple[str, str]] | None = None,
    output_name: str = "prediction",
    direction: str = "forward",
    reduce_over_time: bool = False,
    state_not_fed: bool = False,
    dynamic_hidden: bool = False,
    seed: int = 0,
) -> onnx.ModelProto:
    """One graph; `dims` names the data tensors' leading dims in the graph's own order (for
    `time_major` pass e.g. ("time", "batch")); the state's batch dim uses the batch name."""
    rng = np.random.default_rng(seed)
    bound = 1 / np.sqrt(hidden)
    pairs = state_names or (
        [("state_h_in", "state_h_out"), ("state_c_in", "state_c_out")]
        if op == "LSTM"
        else [("state_h_in", "state_h_out")]
    )
    bh = layout == "no_time_axis"
    n_dir = 2 if direction == "bidirectional" else 1
    inits: list[onnx.TensorProto] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    def uniform(name: str, *shape: int) -> str:
        return const(name, rng.uniform(-bound, bound, shape).astype(np.float32))

    nodes = []
    names = [n for n, _ in inputs]
    x = names[0]
    if len(names) > 1:
        nodes.append(helper.make_node("Concat", names, ["x_all"], axis=-1))
        x = "x_all"
    if layout == "batch_major":
        nodes.append(helper.make_node("Transpose", [x], ["x_tm"], perm=[1, 0, 2]))
        x = "x_tm"
    elif bh:
        nodes.append(helper.make_node("Unsqueeze", [x, const("ax0", np.array([0]))], ["x_tm"]))
        x = "x_tm"
    n_feat = sum(f for _, f in inputs)
    finals: dict[str, list[str]] = {out: [] for _, out in pairs}
    gates = GATES[op] * hidden
    extra = {"linear_before_reset": 1} if op == "GRU" else {}
    for li in range(layers):
        w = uniform(f"W{li}", n_dir, gates, n_feat if li == 0 else hidden)
        r, b = uniform(f"R{li}", n_dir, gates, hidden), uniform(f"B{li}", n_dir, 2 * gates)
        state_in = []
        lo = const(f"lo{li}", np.array([li * n_dir]))
        hi = const(f"hi{li}", np.array([(li + 1) * n_dir]))
        for src, _ in pairs:
            name = f"{src}_{li}"
            if bh:
                nodes.append(helper.make_node("Unsqueeze", [src, "ax0"], [name]))
            else:
                nodes.append(helper.make_node("Slice", [src, lo, hi], [name]))
            state_in.append(name)
        outs = [f"Y{li}"] + [f"{out}_{li}" for _, out in pairs]
        nodes.append(
            helper.make_node(
                op,
                [x, w, r, b, "", *state_in],
                outs,
                hidden_size=hidden,
                direction=direction,
                **extra,
            )
        )
        if n_dir == 2:  # [T, 2, B, H] -> [T, B, 2H]
            nodes.append(helper.make_node("Transpose", [f"Y{li}"], [f"Yt{li}"], perm=[0, 2, 1, 3]))
            shape = const("two_h", np.array([0, 0, 2 * hidden]))
            nodes.append(helper.make_node("Reshape", [f"Yt{li}", shape], [f"seq{li}"]))
        else:
            ax1 = const("ax1", np.array([1])) if li == 0 else "ax1"
            nodes.append(helper.make_node("Squeeze", [f"Y{li}", ax1], [f"seq{li}"]))
        x = f"seq{li}"
        for _, out in pairs:
            finals[out].append(f"{out}_{li}")
    if layout == "batch_major":
        nodes.append(helper.make_node("Transpose", [x], ["h_seq"], perm=[1, 0, 2]))
        x = "h_seq"
    elif bh:
        nodes.append(helper.make_node("Squeeze", [x, "ax0"], ["h_seq"]))
        x = "h_seq"
    if reduce_over_time:  # every step sees the mean over the whole sequence
        axis = 1 if layout == "batch_major" else 0
        nodes.append(helper.make_node("ReduceMean", [x], ["h_mean"], axes=[axis], keepdims=1))
        nodes.append(helper.make_node("Add", [x, "h_mean"], ["h_mixed"]))
        x = "h_mixed"
    head_w = uniform("head_w", n_dir * hidden, n_out)
    nodes.append(helper.make_node("MatMul", [x, head_w], ["z"]))
    nodes.append(helper.make_node("Add", ["z", uniform("head_b", n_out)], [output_name]))
    for (src, out), parts in zip(pairs, finals.values(), strict=True):
        if state_not_fed:
            nodes.append(helper.make_node("Tanh", [src], [out]))
        elif bh:
            nodes.append(helper.make_node("Squeeze", [parts[0], "ax0"], [out]))
        else:
            nodes.append(helper.make_node("Concat", parts, [out], axis=0))

    def value(name: str, shape: list[int | str]) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    lead: list[int | str] = [dims[0]] if bh else list(dims)
    batch = dims[0] if layout != "time_major" else dims[1]
    size: int | str = "hidden" if dynamic_hidden else hidden
    state: list[int | str] = [batch, size] if bh else [layers * n_dir, batch, size]
    graph = helper.make_graph(
        nodes,
        f"foreign-{op.lower()}",
        [value(n, [*lead, f]) for n, f in inputs] + [value(s, state) for s, _ in pairs],
        [value(output_name, [*lead, n_out])] + [value(o, state) for _, o in pairs],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model, full_check=not dynamic_hidden)
    return model


def save(model: onnx.ModelProto, folder: Path, name: str = "model.onnx") -> Path:
    path = folder / name
    path.write_bytes(model.SerializeToString())
    return path


def weights(path: Path) -> dict[str, np.ndarray]:
    """Every initializer of an ONNX file, by name (float64 for the NumPy equations)."""
    model = onnx.load(str(path))
    return {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}


def numpy_lstm(
    w: dict[str, np.ndarray], x: np.ndarray, h: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stacked LSTM + linear head of `build(op="LSTM")`, from the cell equations in float64
    (ONNX gate order i, o, f, c): x [B, T, F], h and c [L, B, H] -> (y [B, T, O], h, c)."""
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    h, c, seq = h.astype(np.float64).copy(), c.astype(np.float64).copy(), x.astype(np.float64)
    for li in range(h.shape[0]):
        wx, wr, bias = w[f"W{li}"][0], w[f"R{li}"][0], w[f"B{li}"][0]
        b = bias[: wx.shape[0]] + bias[wx.shape[0] :]
        out = []
        for t in range(seq.shape[1]):
            i, o, f, g = np.split(seq[:, t] @ wx.T + h[li] @ wr.T + b, 4, axis=-1)
            c[li] = sig(f) * c[li] + sig(i) * np.tanh(g)
            h[li] = sig(o) * np.tanh(c[li])
            out.append(h[li].copy())
        seq = np.stack(out, axis=1)
    return seq @ w["head_w"] + w["head_b"], h, c
