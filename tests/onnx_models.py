"""Torch-free test models: native ONNX LSTM/GRU graphs built with `onnx.helper`, plus manifests.

The graphs have the signature `seqserve export` gives (batch-first `x[B,T,F]`, state `[L,B,H]`
in `h0[, c0]` and out `hn[, cn]`, output `y[B,T,O]`) and the same layout: a Transpose to
time-major, one recurrent node per layer fed a Slice of each state input, and a MatMul + Add
head, so the service and e2e tests need only the dev extra, not torch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from seqserve.service.runtime.manifest import (
    Feature,
    Manifest,
    Output,
    Signature,
    StatePair,
    TensorSpec,
)

OPSET = 17
STATES = {"lstm": (("h0", "hn"), ("c0", "cn")), "gru": (("h0", "hn"),)}
GATES = {"lstm": 4, "gru": 3}


def build_graph(
    cell: str, n_features: int, hidden_size: int, num_layers: int, n_outputs: int, seed: int
) -> onnx.ModelProto:
    """A random stacked LSTM/GRU with a linear head; weights ~ U(-1/sqrt(H), 1/sqrt(H)) as in
    PyTorch's init, so activations stay in the range a trained model sees."""
    rng = np.random.default_rng(seed)
    bound = 1 / np.sqrt(hidden_size)

    def uniform(name: str, *shape: int) -> onnx.TensorProto:
        value = rng.uniform(-bound, bound, shape).astype(np.float32)
        return numpy_helper.from_array(value, name)

    pairs = STATES[cell]
    gates = GATES[cell] * hidden_size
    op, extra = ("LSTM", {}) if cell == "lstm" else ("GRU", {"linear_before_reset": 1})
    inits = [uniform("head_w", hidden_size, n_outputs), uniform("head_b", n_outputs)]
    nodes = [helper.make_node("Transpose", ["x"], ["x_tm"], perm=[1, 0, 2])]
    seq = "x_tm"
    finals: dict[str, list[str]] = {out: [] for _, out in pairs}
    for li in range(num_layers):
        inits += [
            uniform(f"W{li}", 1, gates, n_features if li == 0 else hidden_size),
            uniform(f"R{li}", 1, gates, hidden_size),
            uniform(f"B{li}", 1, 2 * gates),
            numpy_helper.from_array(np.array([li], np.int64), f"start{li}"),
            numpy_helper.from_array(np.array([li + 1], np.int64), f"end{li}"),
        ]
        # Each layer reads its own row of every state input, as torch's export does.
        state_in = []
        for src, _ in pairs:
            name = f"{src}_{li}"
            nodes.append(helper.make_node("Slice", [src, f"start{li}", f"end{li}"], [name]))
            state_in.append(name)
        outs = [f"Y{li}"] + [f"{out}_{li}" for _, out in pairs]
        node_in = [seq, f"W{li}", f"R{li}", f"B{li}", "", *state_in]
        nodes.append(helper.make_node(op, node_in, outs, hidden_size=hidden_size, **extra))
        nodes.append(helper.make_node("Squeeze", [f"Y{li}", "axis1"], [f"seq{li}"]))
        seq = f"seq{li}"
        for _, out in pairs:
            finals[out].append(f"{out}_{li}")
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "axis1"))
    nodes += [
        helper.make_node("Transpose", [seq], ["h_bm"], perm=[1, 0, 2]),
        helper.make_node("MatMul", ["h_bm", "head_w"], ["z"]),
        helper.make_node("Add", ["z", "head_b"], ["y"]),
    ]
    nodes += [helper.make_node("Concat", names, [out], axis=0) for out, names in finals.items()]

    def value(name: str, *shape: int | str) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))

    state = ("batch", hidden_size)
    graph = helper.make_graph(
        nodes,
        f"random-{cell}",
        [
            value("x", "batch", "time", n_features),
            *(value(i, num_layers, *state) for i, _ in pairs),
        ],
        [value("y", "batch", "time", n_outputs), *(value(o, num_layers, *state) for _, o in pairs)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model, full_check=True)
    return model


def write_model_dir(root: Path, model: onnx.ModelProto, manifest_fields: dict[str, object]) -> Path:
    """`<root>/<name>/<version>/{model.onnx, model.json}`; the manifest gets the file's sha256."""
    data = model.SerializeToString()
    manifest = Manifest.model_validate(
        {**manifest_fields, "sha256": hashlib.sha256(data).hexdigest(), "opset": OPSET}
    )
    target = root / manifest.name / manifest.version
    target.mkdir(parents=True)
    (target / manifest.onnx_file).write_bytes(data)
    (target / "model.json").write_text(json.dumps(manifest.model_dump(mode="json"), indent=2))
    return target


def random_model(
    root: Path,
    cell: str = "lstm",
    n_features: int = 1,
    hidden_size: int = 16,
    num_layers: int = 1,
    n_outputs: int | None = None,
    name: str | None = None,
    version: str = "1",
    seed: int = 0,
    features: Sequence[Feature] | None = None,
    outputs: Sequence[Output] | None = None,
) -> Path:
    """A random model directory, with `model.export.export_random_model`'s defaults: features
    `f0..`; `n_outputs` = `n_features` with output j predicting feature j (forecastable),
    otherwise plain regression channels `y0..`."""
    n_outputs = n_features if n_outputs is None else n_outputs
    if features is None:
        features = [Feature(name=f"f{k}") for k in range(n_features)]
    if outputs is None:
        mapped = n_outputs == n_features
        outputs = [Output(name=f"y{j}", feature=j if mapped else None) for j in range(n_outputs)]
    signature = Signature(
        data_input=TensorSpec(name="x", shape=["batch", "time", n_features]),
        data_output=TensorSpec(name="y", shape=["batch", "time", n_outputs]),
        state=[
            StatePair(input=i, output=o, layers=num_layers, size=hidden_size)
            for i, o in STATES[cell]
        ],
    )
    model = build_graph(cell, n_features, hidden_size, num_layers, n_outputs, seed)
    fields: dict[str, object] = {
        "name": name or f"random-{cell}",
        "version": version,
        "description": f"randomly initialised {cell.upper()} (seed {seed}), for tests",
        "cell": cell,
        "signature": signature,
        "features": list(features),
        "outputs": list(outputs),
        "training": {"random_init_seed": seed},
    }
    return write_model_dir(root, model, fields)
