"""`seqserve import` on graphs built with onnx.helper: detected roles, served math, refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from seqserve.service.runtime.compute import advance
from seqserve.service.runtime.layout import StateRows
from seqserve.service.runtime.registry import LoadedModel, Registry

from seqserve.cli import main
from seqserve.importer.build import import_model
from seqserve.importer.errors import ImportRefused
from seqserve.importer.versions import VersionExists, install
from tests.foreign_models import build, numpy_lstm, save, weights

LSTM_PAIRS = [("state_h_in", "state_h_out"), ("state_c_in", "state_c_out")]


def _import(tmp_path: Path, name: str, **kw: Any) -> tuple[LoadedModel, Path]:
    onnx_file = save(build(**kw), tmp_path, f"{name}.onnx")
    done = import_model(onnx_file, tmp_path / "repo", name)
    return LoadedModel.load(done.path, threads=1), onnx_file


KINDS = {
    "stacked": ({"layers": 3}, "batch_major", ["input_seq"], "LBH"),
    "cell": ({"layout": "no_time_axis"}, "no_time_axis", ["input_seq"], "BH"),
    "time_major": (
        {"layout": "time_major", "dims": ("time", "batch")},
        "time_major",
        ["input_seq"],
        "LBH",
    ),
    # neutral dim names: the state's batch dim tells which data axis is the batch
    "time_major_neutral": (
        {"layout": "time_major", "dims": ("d0", "d1")},
        "time_major",
        ["input_seq"],
        "LBH",
    ),
    "batch_major_neutral": ({"dims": ("d0", "d1")}, "batch_major", ["input_seq"], "LBH"),
    "two_inputs": ({"inputs": (("temp", 2), ("flow", 1))}, "batch_major", ["temp", "flow"], "LBH"),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_lstm_kinds_are_detected_and_served_like_numpy(tmp_path: Path, kind: str) -> None:
    kw, layout, data, state_layout = KINDS[kind]
    model, onnx_file = _import(tmp_path, kind, **kw)
    sig = model.manifest.signature
    assert sig.data_layout == layout
    assert [s.name for s in sig.data_inputs] == data
    assert sig.data_output.name == "prediction"
    assert [(p.input, p.output, p.layout) for p in sig.state] == [
        (i, o, state_layout) for i, o in LSTM_PAIRS
    ]
    assert model.manifest.cell == "lstm"
    # the server's runtime, from a random state, over uneven chunks, against the equations
    rng = np.random.default_rng(7)
    batch, steps = 2, 9
    raw = rng.standard_normal((batch, steps, model.manifest.n_features))
    shapes = model.layout.tensor_shapes
    h, c = (rng.uniform(-0.5, 0.5, (layers, batch, size)) for layers, size in shapes)
    want, want_h, want_c = numpy_lstm(weights(onnx_file), raw, h, c)
    state = model.layout.zeros(batch)
    state.tensors = [t.transpose(1, 0, 2).astype(np.float32) for t in (h, c)]
    got = []
    for lo, hi in ((0, 1), (1, 5), (5, 9)):
        out, state = advance(model, raw[:, lo:hi], state, np.ones(batch, bool))
        got.append(out)
    np.testing.assert_allclose(np.concatenate(got, axis=1), want, atol=1e-4)
    np.testing.assert_allclose(state.tensors[0].transpose(1, 0, 2), want_h, atol=1e-4)
    np.testing.assert_allclose(state.tensors[1].transpose(1, 0, 2), want_c, atol=1e-4)


@pytest.mark.parametrize("layout", ["batch_major", "no_time_axis"])
def test_gru_is_detected_with_one_state_pair(tmp_path: Path, layout: str) -> None:
    model, _ = _import(tmp_path, "gru", op="GRU", layout=layout)
    sig = model.manifest.signature
    assert model.manifest.cell == "gru"
    assert sig.data_layout == layout
    assert [(p.input, p.output) for p in sig.state] == [LSTM_PAIRS[0]]


def test_imported_versions_count_up_and_are_never_overwritten(tmp_path: Path) -> None:
    onnx_file = save(build(op="GRU"), tmp_path)
    repo = tmp_path / "repo"
    assert import_model(onnx_file, repo, "g").path == repo / "g" / "1"
    assert import_model(onnx_file, repo, "g").path == repo / "g" / "2"
    before = (repo / "g" / "1" / "model.json").read_bytes()
    with pytest.raises(VersionExists, match="never overwritten"):
        import_model(save(build(op="GRU", seed=5), tmp_path, "other.onnx"), repo, "g", "1")
    assert (repo / "g" / "1" / "model.json").read_bytes() == before
    assert Registry.scan(repo).versions("g") == ["1", "2"]


REFUSED = {
    "bidirectional": ({"direction": "bidirectional"}, ["direction=bidirectional", "input_seq"]),
    "reduce_over_time": (
        {"reduce_over_time": True},
        ["not streamable", "'prediction'", "whole sequence"],
    ),
    "state_not_fed": ({"state_not_fed": True}, ["state not carried", "'state_h_in'"]),
    "dynamic_hidden": ({"dynamic_hidden": True}, ["dynamic shape", "'state_h_in'"]),
}


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_unstreamable_models_are_refused_naming_cause_and_tensor(tmp_path: Path, kind: str) -> None:
    kw, words = REFUSED[kind]
    onnx_file = save(build(**kw), tmp_path)
    with pytest.raises(ImportRefused) as info:
        import_model(onnx_file, tmp_path / "repo", "bad")
    for word in words:
        assert word in str(info.value)
    assert not (tmp_path / "repo" / "bad").exists()  # nothing half-written


def test_flags_override_the_guesses(tmp_path: Path) -> None:
    onnx_file = save(build(layout="time_major", dims=("d0", "d1")), tmp_path)
    # read as batch-major on purpose: the proof fails and names the layout it was given
    with pytest.raises(ImportRefused, match="batch_major"):
        import_model(onnx_file, tmp_path / "repo", "tm", layout="batch_major")
    done = import_model(
        onnx_file,
        tmp_path / "repo",
        "tm",
        states=[("state_c_in", "state_c_out"), ("state_h_in", "state_h_out")],
        data_output="prediction",
    )
    assert [p.input for p in done.manifest.signature.state] == ["state_c_in", "state_h_in"]
    assert done.manifest.signature.data_layout == "time_major"
    # a pair that is not the recurrence's state fails the proof
    with pytest.raises(ImportRefused, match="state"):
        import_model(
            onnx_file,
            tmp_path / "repo",
            "swapped",
            states=[("state_h_in", "state_c_out"), ("state_c_in", "state_h_out")],
        )
    assert not (tmp_path / "repo" / "swapped").exists()


def test_features_file_sets_names_and_preprocessing(tmp_path: Path) -> None:
    onnx_file = save(build(inputs=(("a", 2),), n_out=2), tmp_path)
    spec = tmp_path / "features.toml"
    spec.write_text(
        '[[features]]\nname = "temp"\nunit = "C"\nmean = 20.0\nstd = 5.0\n'
        '[[features]]\nname = "load"\ndifference = true\n'
        '[[outputs]]\nname = "temp_next"\nfeature = 0\n'
        '[[outputs]]\nname = "load_next"\nfeature = 1\n'
    )
    done = import_model(onnx_file, tmp_path / "repo", "feat", features_file=spec)
    m = done.manifest
    assert [(f.name, f.unit, f.mean, f.std, f.difference) for f in m.features] == [
        ("temp", "C", 20.0, 5.0, False),
        ("load", "", 0.0, 1.0, True),
    ]
    assert m.forecastable
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"features": [{"name": "only-one"}]}))
    with pytest.raises(ImportRefused, match="2 features but 1 listed"):
        import_model(onnx_file, tmp_path / "repo", "feat2", features_file=bad)


def test_cli_imports_and_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = save(build(op="GRU"), tmp_path, "good.onnx")
    bad = save(build(direction="reverse"), tmp_path, "bad.onnx")
    repo = str(tmp_path / "repo")
    assert main(["import", str(good), "--repository", repo, "--name", "m"]) == 0
    assert "state_h_in->state_h_out" in capsys.readouterr().out
    assert main(["import", str(bad), "--repository", repo, "--name", "m"]) == 1
    assert "direction=reverse" in capsys.readouterr().err
    assert main(["import", str(good), "--repository", repo, "--name", "m", "--state", "x"]) == 2
    assert sorted(p.name for p in (tmp_path / "repo" / "m").iterdir()) == ["1"]


def test_install_leaves_nothing_when_writing_fails(tmp_path: Path) -> None:
    def explode(staged: Path) -> None:
        (staged / "model.onnx").write_bytes(b"half")
        raise RuntimeError("verification failed")

    with pytest.raises(RuntimeError):
        install(tmp_path, "m", "1", explode)
    assert list(tmp_path.iterdir()) == []


def test_state_rows_stay_batch_first(tmp_path: Path) -> None:
    """The engine's view of a [B, H]-state model: rows [B, 1, H], like every other model."""
    model, _ = _import(tmp_path, "cell", layout="no_time_axis", hidden=5)
    assert model.layout.tensor_shapes == ((1, 5), (1, 5))
    rows = model.layout.zeros(4)
    assert isinstance(rows, StateRows)
    out, new = advance(model, np.ones((4, 3, 3)), rows, np.zeros(4, bool))
    assert out.shape == (4, 3, 2)
    assert [t.shape for t in new.tensors] == [(4, 1, 5), (4, 1, 5)]
