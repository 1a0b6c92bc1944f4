"""`seqserve verify` on the shipped model, and its failures on tampered model directories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from seqserve.model.reference import ReferenceModel
from seqserve.model.verify import VerificationError, check_ops, sha256_file, verify_model_dir
from seqserve.service.runtime.manifest import Manifest

from seqserve.cli import main
from tests.model.conftest import SHIPPED_DIR

pytestmark = pytest.mark.model


def _manifest(model_dir: Path) -> dict:
    return json.loads((model_dir / "model.json").read_text())


def _write_manifest(model_dir: Path, doc: dict) -> None:
    Manifest.model_validate(doc)  # the tampered manifest is itself well-formed
    (model_dir / "model.json").write_text(json.dumps(doc))


def test_shipped_model_verifies() -> None:
    report = verify_model_dir(SHIPPED_DIR)
    assert max(report.max_abs_err.values()) <= 1e-5
    assert len(report.max_abs_err) == 12  # 3 x 3 grid + stepwise for each batch size


def test_shipped_model_matches_reference_on_the_real_series() -> None:
    """The whole CO2 series (2,284 weeks) streamed from a zero state, preprocessed from the
    manifest alone: ONNX Runtime vs the cell equations, and the manifest vs the training data."""
    from seqserve.model.data import load_prepared

    manifest = Manifest.model_validate(_manifest(SHIPPED_DIR))
    feat = manifest.features[0]
    prep = load_prepared()
    assert (feat.difference, feat.mean, feat.std) == (True, prep.mean, prep.std)
    diff = np.concatenate([[0.0], np.diff(prep.raw)])
    x = ((diff - feat.mean) / feat.std).reshape(1, -1, 1).astype(np.float32)
    assert x.shape[1] >= 1000

    sess = ort.InferenceSession(SHIPPED_DIR / "model.onnx", providers=["CPUExecutionProvider"])
    zeros = np.zeros((1, 1, manifest.signature.state[0].size), np.float32)
    y, hn, cn = sess.run(["y", "hn", "cn"], {"x": x, "h0": zeros, "c0": zeros})
    ry, (rh, rc) = ReferenceModel.from_onnx(SHIPPED_DIR / "model.onnx").run(x)
    assert max(np.abs(y - ry).max(), np.abs(hn - rh).max(), np.abs(cn - rc).max()) <= 1e-5

    # The server's inversion of y gives next week's ppm; it must beat "no change".
    pred = y[0, :-1, 0] * feat.std + feat.mean + prep.raw[:-1]
    test = slice(prep.test_start - 1, None)
    model_mae = np.abs(pred[test] - prep.raw[1:][test]).mean()
    naive_mae = np.abs(prep.raw[:-1][test] - prep.raw[1:][test]).mean()
    assert model_mae < 0.85 * naive_mae


def test_shipped_manifest_documents_data_and_metrics() -> None:
    doc = _manifest(SHIPPED_DIR)
    manifest = Manifest.model_validate(doc)
    assert manifest.sha256 == sha256_file(SHIPPED_DIR / "model.onnx")
    assert manifest.forecastable
    assert manifest.differenced
    assert "public domain" in doc["training"]["dataset"]["license"]
    assert doc["training"]["config"]["seed"] == 0
    h1, h13 = doc["metrics"]["test"]["h1"], doc["metrics"]["test"]["h13"]
    assert h1["model"]["mae"] < h1["persistence"]["mae"]
    assert h1["model"]["rmse"] < h1["persistence"]["rmse"]
    assert h13["model"]["mae"] < min(h13["persistence"]["mae"], h13["seasonal_naive"]["mae"])


def test_tampered_hash_in_manifest_fails(shipped_copy: Path) -> None:
    doc = _manifest(shipped_copy)
    doc["sha256"] = "0" * 64
    _write_manifest(shipped_copy, doc)
    with pytest.raises(VerificationError, match="sha256 mismatch: model.json says 0000"):
        verify_model_dir(shipped_copy)


def test_tampered_onnx_file_fails(shipped_copy: Path) -> None:
    path = shipped_copy / "model.onnx"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(VerificationError, match="sha256 mismatch.*model.onnx hashes to"):
        verify_model_dir(shipped_copy)


def test_signature_that_disagrees_with_the_graph_fails(shipped_copy: Path) -> None:
    doc = _manifest(shipped_copy)
    for pair in doc["signature"]["state"]:
        pair["size"] += 1
    _write_manifest(shipped_copy, doc)
    with pytest.raises(VerificationError, match=r"signature mismatch: input 'c0' dim 2: graph has"):
        verify_model_dir(shipped_copy)


def test_graph_with_a_wrong_input_name_fails(shipped_copy: Path) -> None:
    model = onnx.load(shipped_copy / "model.onnx")
    for value in model.graph.input:
        if value.name == "x":
            value.name = "input"
    for node in model.graph.node:
        node.input[:] = ["input" if i == "x" else i for i in node.input]
    onnx.save(model, shipped_copy / "model.onnx")
    doc = _manifest(shipped_copy)
    doc["sha256"] = sha256_file(shipped_copy / "model.onnx")
    _write_manifest(shipped_copy, doc)
    with pytest.raises(
        VerificationError, match=r"missing from graph: \['x'\], not in manifest: \['input'\]"
    ):
        verify_model_dir(shipped_copy)


def test_manifest_cell_that_disagrees_with_the_graph_fails(shipped_copy: Path) -> None:
    doc = _manifest(shipped_copy)
    doc["cell"] = "gru"
    _write_manifest(shipped_copy, doc)
    with pytest.raises(VerificationError, match="no native ONNX GRU node"):
        verify_model_dir(shipped_copy)


def test_loop_and_scan_are_rejected() -> None:
    manifest = Manifest.model_validate(_manifest(SHIPPED_DIR))
    model = onnx.load(SHIPPED_DIR / "model.onnx")
    model.graph.node.append(onnx.helper.make_node("Scan", ["x"], ["unused"]))
    with pytest.raises(VerificationError, match=r"graph uses \['Scan'\]"):
        check_ops(manifest, model)


def test_pytorch_that_disagrees_fails(random_repo: dict[str, Path]) -> None:
    import torch
    from seqserve.model import lstm
    from seqserve.model.export import torch_runner

    torch.manual_seed(999)  # not the weights in the file
    other = lstm.build("lstm", n_features=2, hidden_size=16, num_layers=1, n_outputs=2)
    with pytest.raises(VerificationError, match="numerical mismatch: pytorch vs NumPy reference"):
        verify_model_dir(random_repo["lstm1"], torch_runner=torch_runner(other), times=(1, 50))


def test_cli_exit_codes(shipped_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(shipped_copy)]) == 0
    assert capsys.readouterr().out.startswith("OK co2 v1 (lstm")
    (shipped_copy / "model.onnx").write_bytes(b"not a model")
    assert main(["verify", str(shipped_copy)]) == 1
    assert "sha256 mismatch" in capsys.readouterr().err


def test_onnxruntime_prints_no_shape_warnings(
    random_repo: dict[str, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    """Dynamic batch and time really are dynamic: no VerifyOutputSizes warnings at any size."""
    for model_dir in [SHIPPED_DIR, *random_repo.values()]:
        opts = ort.SessionOptions()
        opts.log_severity_level = 1  # info and up: warnings certainly reach stderr
        sess = ort.InferenceSession(
            model_dir / "model.onnx", opts, providers=["CPUExecutionProvider"]
        )
        capfd.readouterr()  # session creation may log at info level; inference must not warn
        for batch in (1, 2, 5):
            for time in (1, 2, 9):
                feed = {}
                for value in sess.get_inputs():
                    shape = [
                        batch if d == "batch" else time if d == "time" else d for d in value.shape
                    ]
                    feed[value.name] = np.zeros(shape, np.float32)
                sess.run(None, feed)
        err = capfd.readouterr().err
        assert "Expected shape" not in err, err
        assert "[W:" not in err, err
