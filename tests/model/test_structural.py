"""co2 v2: the structural filter in the graph, read by the NumPy reference and served as-is."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from seqserve.model.reference import ReferenceModel, UnsupportedGraph
from seqserve.model.verify import verify_model_dir

pytestmark = pytest.mark.model

V2 = Path(__file__).parents[2] / "service" / "model_repository" / "co2" / "2"
STATES = (("h0", "hn"), ("c0", "cn"), ("s0", "sn"))


def ort_run(x: np.ndarray, states: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    sess = ort.InferenceSession(str(V2 / "model.onnx"), providers=["CPUExecutionProvider"])
    feed = {"x": x.astype(np.float32)} | {
        i: s.astype(np.float32) for (i, _), s in zip(STATES, states, strict=True)
    }
    y, *new = sess.run(["y", *(o for _, o in STATES)], feed)
    return y, new


def series_inputs() -> np.ndarray:
    from seqserve.model.data import load_prepared

    return load_prepared().inputs.reshape(1, -1, 1)


def test_reference_reads_the_filter_and_matches_ort_on_the_real_series() -> None:
    ref = ReferenceModel.from_onnx(V2 / "model.onnx")
    assert ref.linear is not None
    assert ref.state_inputs == ("h0", "c0", "s0")
    assert ref.state_shapes["s0"] == (1, ref.linear.size)
    x = series_inputs()
    states = ref.zero_states(1)
    y_ref, s_ref = ref.run(x, states)
    y, new = ort_run(x, states)
    assert np.abs(y - y_ref).max() <= 1e-5
    for got, want in zip(new, s_ref, strict=True):
        assert np.abs(got - want).max() <= 1e-5
    # the filter matters: a reference blind to it is far off
    blind = dataclasses.replace(ref, linear=None, state_inputs=("h0", "c0"))
    y_blind, _ = blind.run(x, states[:2])
    assert np.abs(y - y_blind).max() > 0.1


def test_verify_passes_on_v2_from_random_nonzero_states() -> None:
    report = verify_model_dir(V2)  # the grid up to 1,000 steps, and stepwise == whole
    assert max(report.max_abs_err.values()) <= 1e-5
    assert any("stepwise" in k for k in report.max_abs_err)


def test_filter_reproduces_the_structural_model_one_step_forecasts() -> None:
    """The filter in the graph, alone, is statsmodels' UC model, up to a start-up transient (a
    zero state in 1958 against UC's diffuse prior) that fades with the slowest mode (~0.996)."""
    from seqserve.model import baselines as bl
    from seqserve.model.data import load_prepared
    from seqserve.model.structural import modal, run_filter, steady_filter

    prep = load_prepared()
    params = json.loads((V2.parents[3] / "model" / "baselines_params.json").read_text())["uc"]
    f = modal(steady_filter(params, prep.raw[: prep.val_start]))
    dx = (prep.inputs * prep.std + prep.mean)[None]
    nxt, _ = run_filter(f, dx, np.zeros((1, f.size)))
    mine = prep.raw + nxt[0]  # forecast of week t+1 made at week t
    origins = np.arange(prep.val_start, len(prep.raw) - 1)
    theirs = bl.uc_paths(params, prep.raw, origins, 1)[:, 0]
    gap = np.abs(mine[origins] - theirs)
    assert gap.max() < 5e-3  # ppm, from 1990 on; weekly errors are ~0.3 ppm
    assert gap[-52:].max() < 1e-3  # and fading: 2001


def test_reference_refuses_a_nonlinear_rnn_branch(tmp_path: Path) -> None:
    model = onnx.load(str(V2 / "model.onnx"))
    rnn = next(n for n in model.graph.node if n.op_type == "RNN")
    for a in rnn.attribute:
        if a.name == "activations":
            a.strings[0] = b"Tanh"
    with pytest.raises(UnsupportedGraph, match="Affine"):
        ReferenceModel.from_onnx(model)


def test_reference_refuses_a_readout_not_blended_into_the_head() -> None:
    model = onnx.load(str(V2 / "model.onnx"))
    diff = next(n for n in model.graph.node if n.output[0] == "/filter/diff")
    diff.op_type = "Add"  # head + readout, gated: not the blend the reader knows
    with pytest.raises(UnsupportedGraph, match="head"):
        ReferenceModel.from_onnx(model)


def test_a_new_session_starts_as_v1_and_blends_in_the_filter_as_it_warms_up() -> None:
    """The warm-up ramp: a zero state gives the filter no weight (its season is unknown yet), so
    the first weeks are v1's forecasts; after the series since 1958 the filter has its 0.75."""
    ref = ReferenceModel.from_onnx(V2 / "model.onnx")
    v1 = ReferenceModel.from_onnx(V2.parent / "1" / "model.onnx")
    x = series_inputs()
    y2, states = ref.run(x[:, :3], ref.zero_states(1))
    y1, _ = v1.run(x[:, :3], v1.zero_states(1))
    assert np.abs(y2 - y1).max() < 1e-5
    assert ref.linear is not None
    assert ref.linear.gate is not None
    _, states = ref.run(x, ref.zero_states(1))
    weight = float(states[-1][0, 0] @ ref.linear.gate)
    assert 0.74 < weight <= 0.75
    y2, _ = ref.run(x[:, :200], ref.zero_states(1))
    y1, _ = v1.run(x[:, :200], v1.zero_states(1))
    assert np.abs(y2 - y1).max() > 1e-3  # by then the filter has a say
