"""Models brought in by `seqserve import`, served by a real server over v1, WebSocket and V2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from websockets.sync.client import connect

from scripts.launch import ServerProcess
from seqserve.cli import main
from tests.foreign_models import build, numpy_lstm, save, weights

TOL = 1e-4
# three imported kinds: a 3-layer batch-major LSTM no test has seen, time-major, one step a call
KINDS = {
    "brew": {"layers": 3, "hidden": 12, "inputs": (("input_seq", 4),), "n_out": 2, "seed": 11},
    "tm": {"layout": "time_major", "dims": ("time", "batch"), "layers": 2, "seed": 12},
    "cell": {"layout": "no_time_axis", "seed": 13},
}


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("import")
    files = {}
    for name, kw in KINDS.items():
        files[name] = save(build(**kw), root, f"{name}.onnx")  # type: ignore[arg-type]
        argv = ["import", str(files[name]), "--repository", str(root / "repo"), "--name", name]
        assert main(argv) == 0
    return files


@pytest.fixture(scope="module")
def server(
    imported: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    repo = next(iter(imported.values())).parent / "repo"
    proc = ServerProcess.seqserve(repo, tmp_path_factory.mktemp("logs")).start()
    yield proc
    proc.stop()


def _expected(onnx_file: Path, raw: np.ndarray) -> np.ndarray:
    """Outputs [T, O] of the NumPy equations from the zero state a new session starts with."""
    w = weights(onnx_file)
    layers, hidden = sum(k.startswith("R") for k in w), w["R0"].shape[2]
    zeros = np.zeros((layers, 1, hidden))
    return numpy_lstm(w, raw[None], zeros, zeros)[0][0]


def _series(steps: int, features: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (steps, features))


@pytest.mark.parametrize("name", sorted(KINDS))
def test_v1_steps_in_uneven_chunks_match_numpy(
    server: ServerProcess, imported: dict[str, Path], name: str
) -> None:
    meta = httpx.get(f"{server.url}/v1/models/{name}").json()
    n_feat = len(meta["features"])
    raw = _series(17, n_feat, seed=1)
    sid = httpx.post(f"{server.url}/v1/sessions", json={"model": name}).json()["id"]
    got = []
    cuts = [0, 1, 4, 5, 11, 17]
    for lo, hi in zip(cuts, cuts[1:], strict=False):
        if lo == 11:  # carry on in a fresh session from this one's exported state
            state = httpx.get(f"{server.url}/v1/sessions/{sid}/state").json()
            r = httpx.post(f"{server.url}/v1/sessions", json={"model": name, "state": state})
            assert r.status_code == 201, r.text
            sid = r.json()["id"]
        body = {"inputs": raw[lo:hi].tolist(), "step": lo}
        r = httpx.post(f"{server.url}/v1/sessions/{sid}/steps", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["step"] == hi
        got.append(r.json()["outputs"])
    np.testing.assert_allclose(np.concatenate(got), _expected(imported[name], raw), atol=TOL)
    # a replay of the last request is answered from the record, not applied twice
    again = httpx.post(f"{server.url}/v1/sessions/{sid}/steps", json=body).json()
    assert again["step"] == 17


def test_websocket_on_an_imported_model(server: ServerProcess, imported: dict[str, Path]) -> None:
    raw = _series(7, 4, seed=2)
    sid = httpx.post(f"{server.url}/v1/sessions", json={"model": "brew"}).json()["id"]
    url = server.url.replace("http", "ws") + f"/v1/sessions/{sid}/stream"
    with connect(url, open_timeout=10) as ws:
        for lo, hi in ((0, 3), (3, 4), (4, 7)):
            ws.send(json.dumps({"inputs": raw[lo:hi].tolist(), "step": lo}))
        replies = [json.loads(ws.recv(timeout=10)) for _ in range(3)]
    assert [r["step"] for r in replies] == [3, 4, 7]
    got = np.concatenate([r["outputs"] for r in replies])
    np.testing.assert_allclose(got, _expected(imported["brew"], raw), atol=TOL)


def test_v2_sequence_on_an_imported_model(server: ServerProcess, imported: dict[str, Path]) -> None:
    raw = _series(6, 4, seed=3)
    meta = httpx.get(f"{server.url}/v2/models/brew").json()
    assert meta["inputs"][0]["name"] == "input_seq"
    got = []
    for lo, hi, flags in ((0, 2, {"sequence_start": True}), (2, 6, {"sequence_end": True})):
        chunk = raw[lo:hi]
        tensor = {
            "name": "input_seq",
            "datatype": "FP32",
            "shape": [1, *chunk.shape],
            "data": chunk.ravel().tolist(),
        }
        body = {"inputs": [tensor], "parameters": {"sequence_id": 4242, **flags}}
        r = httpx.post(f"{server.url}/v2/models/brew/infer", json=body)
        assert r.status_code == 200, r.text
        out = next(o for o in r.json()["outputs"] if o["name"] == "prediction")
        got.append(np.array(out["data"]).reshape(out["shape"])[0])
    np.testing.assert_allclose(np.concatenate(got), _expected(imported["brew"], raw), atol=TOL)
