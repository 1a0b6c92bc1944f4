"""The model repository refuses models that break the contract, naming what disagreed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from seqserve.service.errors import ModelLoadError
from seqserve.service.runtime.registry import Registry


def _edit_manifest(model_dir: Path, **changes: object) -> None:
    path = model_dir / "model.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def test_scan_loads_every_model_and_version(repo: Path) -> None:
    reg = Registry.scan(repo)
    assert reg.names() == ["diffed", "gru", "multi"]
    assert reg.versions("diffed") == ["1", "2"]
    assert reg.get("gru").layout.tensor_shapes == ((1, 16),)
    assert reg.get("multi").layout.tensor_shapes == ((2, 8), (2, 8))


def test_tampered_onnx_is_refused(repo_copy: Path) -> None:
    onnx = repo_copy / "gru" / "1" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    with pytest.raises(ModelLoadError, match="SHA-256 .* disagrees with the manifest"):
        Registry.scan(repo_copy)


def test_signature_mismatch_is_refused(repo_copy: Path) -> None:
    model_dir = repo_copy / "multi" / "1"
    manifest = json.loads((model_dir / "model.json").read_text())
    manifest["signature"]["data_input"]["name"] = "inputs"
    (model_dir / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match=r"graph inputs \['c0', 'h0', 'x'\] disagree"):
        Registry.scan(repo_copy)


def test_wrong_hidden_size_is_refused(repo_copy: Path) -> None:
    model_dir = repo_copy / "multi" / "1"
    manifest = json.loads((model_dir / "model.json").read_text())
    for pair in manifest["signature"]["state"]:
        pair["size"] = 9
    (model_dir / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="dim 2: manifest says 9, graph says 8"):
        Registry.scan(repo_copy)


def test_folder_and_manifest_must_agree(repo_copy: Path) -> None:
    _edit_manifest(repo_copy / "gru" / "1", version="3")
    with pytest.raises(ModelLoadError, match="folder says gru/1 but the manifest says gru/3"):
        Registry.scan(repo_copy)


def test_invalid_manifest_is_refused(repo_copy: Path) -> None:
    _edit_manifest(repo_copy / "gru" / "1", features=[])
    with pytest.raises(ModelLoadError, match="invalid manifest"):
        Registry.scan(repo_copy)


@pytest.mark.e2e  # runs the real server process (which must refuse to start)
def test_bad_model_stops_the_server_with_a_message(repo_copy: Path) -> None:
    onnx = repo_copy / "gru" / "1" / "model.onnx"
    onnx.write_bytes(b"not onnx")
    env = {"SEQSERVE_MODEL_REPOSITORY": str(repo_copy), "SEQSERVE_PORT": "0", "PATH": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "seqserve.service"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert lines[0].startswith(f"seqserve: cannot serve the model repository {repo_copy}")
    assert lines[1].strip().startswith("gru/1/model.onnx: SHA-256")  # the version, its fault
    assert "disagrees with the manifest" in lines[1]
    assert "Traceback" not in proc.stderr


@pytest.mark.e2e  # runs the real server process (which must refuse to start)
def test_bad_settings_stop_the_server_with_a_message(tmp_path: Path) -> None:
    env = {"SEQSERVE_MODEL_REPOSITORY": str(tmp_path / "missing"), "PATH": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "seqserve.service"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "SEQSERVE_MODEL_REPOSITORY" in proc.stderr


def test_importing_the_app_loads_no_torch() -> None:
    code = (
        "import sys, seqserve.service.app, seqserve.service.__main__, seqserve.service.engine\n"
        "import seqserve.service.state.redis_store\n"
        "from seqserve.service.app import create_app\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'model', 'service')\n"
        "       or m.startswith('seqserve.model')]\n"
        "assert not bad, f'the serving app imported {bad}'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
