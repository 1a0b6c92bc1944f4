"""The NumPy reference against PyTorch (float64) and ONNX Runtime (the grid, up to 1,000 steps)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from seqserve.model.reference import ReferenceModel, UnsupportedGraph
from seqserve.model.verify import verify_model_dir

from tests.model.conftest import RANDOM_MODELS

pytestmark = pytest.mark.model

ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize("name", sorted(RANDOM_MODELS))
def test_reference_equals_pytorch_in_float64(name: str) -> None:
    """Same weights, same equations: the two agree to float64 roundoff, so the gate order,
    both biases, layer stacking and the head are read correctly from the ONNX file."""
    import torch
    from seqserve.model import lstm
    from seqserve.model.export import onnx_bytes

    kw = dict(RANDOM_MODELS[name])
    torch.manual_seed(kw.pop("seed"))
    kw.setdefault("n_outputs", kw["n_features"])
    model = lstm.build(**kw)
    ref = ReferenceModel.from_onnx(onnx.load_from_string(onnx_bytes(model)))
    assert (ref.cell, ref.num_layers, ref.hidden_size) == (
        kw["cell"],
        kw["num_layers"],
        kw["hidden_size"],
    )

    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 200, kw["n_features"]))
    states = [
        rng.uniform(-1, 1, (kw["num_layers"], 5, kw["hidden_size"])) for _ in ref.state_inputs
    ]
    y, new = ref.run(x, states)
    with torch.no_grad():
        ty, *tnew = model.double()(torch.from_numpy(x), *map(torch.from_numpy, states))
    np.testing.assert_allclose(y, ty.numpy(), rtol=0, atol=1e-12)
    for a, b in zip(new, tnew, strict=True):
        np.testing.assert_allclose(a, b.numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(RANDOM_MODELS))
def test_onnxruntime_matches_reference_on_the_grid(random_repo: dict[str, Path], name: str) -> None:
    """Batch {1, 7, 64} x time {1, 50, 1000} from random nonzero states, plus stepwise == whole."""
    report = verify_model_dir(random_repo[name], times=(1, 50, 1000))
    grid = [k for k in report.max_abs_err if k.startswith("onnxruntime vs reference")]
    assert len(grid) == 9
    assert sum("stepwise" in k for k in report.max_abs_err) == 3
    assert max(report.max_abs_err.values()) <= 1e-5


def _gru_graph(
    hidden: int, features: int, outputs: int, rng: np.random.Generator
) -> onnx.ModelProto:
    """A hand-built batch-first GRU with linear_before_reset=0 and its bias in a Constant node."""
    w = rng.uniform(-0.5, 0.5, (1, 3 * hidden, features)).astype(np.float32)
    r = rng.uniform(-0.5, 0.5, (1, 3 * hidden, hidden)).astype(np.float32)
    b = rng.uniform(-0.5, 0.5, (1, 6 * hidden)).astype(np.float32)
    head = rng.uniform(-0.5, 0.5, (hidden, outputs)).astype(np.float32)
    head_b = rng.uniform(-0.5, 0.5, (outputs,)).astype(np.float32)
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
        helper.make_node("Constant", [], ["B"], value=numpy_helper.from_array(b, "B")),
        helper.make_node("GRU", ["xt", "W", "R", "B", "", "h0"], ["Y", "hn"], hidden_size=hidden),
        helper.make_node("Squeeze", ["Y", "axis1"], ["Ys"]),
        helper.make_node("Transpose", ["Ys"], ["Yb"], perm=[1, 0, 2]),
        helper.make_node("MatMul", ["Yb", "head"], ["z"]),
        helper.make_node("Add", ["z", "head_b"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(a, n)
        for a, n in ((w, "W"), (r, "R"), (head, "head"), (head_b, "head_b"))
    ] + [numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1")]
    graph = helper.make_graph(
        nodes,
        "gru",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", features]),
            helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, "B", hidden]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", "T", outputs]),
            helper.make_tensor_value_info("hn", TensorProto.FLOAT, [1, "B", hidden]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def test_gru_without_linear_before_reset_matches_onnxruntime() -> None:
    """torch always exports linear_before_reset=1; the other variant is read and run too."""
    model = _gru_graph(hidden=8, features=3, outputs=2, rng=np.random.default_rng(1))
    ref = ReferenceModel.from_onnx(model)
    assert not ref.layers[0].linear_before_reset
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 300, 3)).astype(np.float32)
    h0 = rng.uniform(-1, 1, (1, 4, 8)).astype(np.float32)
    y, hn = sess.run(["y", "hn"], {"x": x, "h0": h0})
    ry, (rhn,) = ref.run(x, [h0])
    assert np.max(np.abs(y - ry)) <= 1e-5
    assert np.max(np.abs(hn - rhn)) <= 1e-5


def test_reference_rejects_a_graph_without_a_recurrent_op() -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", "T", 1])],
    )
    with pytest.raises(UnsupportedGraph, match="no native LSTM or GRU node"):
        ReferenceModel.from_onnx(helper.make_model(graph))


def test_reference_and_verify_do_not_import_torch() -> None:
    code = (
        "import sys, model.reference, model.verify; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
