"""`seqserve export --module`: users' own PyTorch modules into a repository, served, and refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from scripts.launch import ServerProcess
from seqserve.cli import main

MODULE = "tests.model.user_models"
TOL = 1e-5


def _weights(tmp_path: Path, module: object, seed: int) -> Path:
    """Fresh random weights for `module`, saved as a user would: torch.save(state_dict)."""
    import torch

    torch.manual_seed(seed)
    for p in module.parameters():  # type: ignore[attr-defined]
        torch.nn.init.uniform_(p, -0.4, 0.4)
    path = tmp_path / f"weights-{seed}.pt"
    torch.save(module.state_dict(), path)  # type: ignore[attr-defined]
    return path


def _export(repo: Path, factory: str, name: str, *extra: str) -> int:
    argv = ["export", "--module", f"{MODULE}:{factory}", "--repository", str(repo)]
    return main([*argv, "--name", name, *extra])


def _torch_run(module: object, x: np.ndarray, states: list[np.ndarray]) -> list[np.ndarray]:
    import torch

    from tests.model import user_models

    with torch.no_grad():
        t = [torch.from_numpy(s) for s in states]
        if isinstance(module, torch.nn.LSTM | user_models.LSTMNestedState):  # nested (h, c)
            y, (h, c) = module(torch.from_numpy(x), (t[0], t[1]))
            return [y.numpy(), h.numpy(), c.numpy()]
        y, *new = module(torch.from_numpy(x), *t)  # type: ignore[operator]
        return [y.numpy(), *(s.numpy() for s in new)]


def _build(factory: str, **kwargs: object) -> object:
    """The user's module, built as the exporter builds it (tests/model/user_models.py needs
    torch, so it is imported here, not at collection)."""
    from tests.model import user_models

    return getattr(user_models, factory)(**kwargs)


# factory, extra CLI args, factory kwargs, expected layers, hidden size, outputs
CASES: dict[str, tuple[str, list[str], dict[str, object], int, int, int]] = {
    "lstm-head": ("LSTMWithHead", ["--features", "3"], {}, 2, 16, 2),
    "gru-mlp": ("GRUWithMLP", ["--module-arg", "hidden=10"], {"hidden": 10}, 2, 10, 1),
    "plain-lstm": ("plain_lstm", [], {}, 2, 6, 6),
    "nested-state": ("LSTMNestedState", [], {}, 1, 8, 2),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_exported_manifest_and_graph_agree_with_pytorch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    factory, extra, kwargs, layers, hidden, n_out = CASES[case]
    module = _build(factory, **kwargs)
    weights = _weights(tmp_path, module, seed=len(case))
    repo = tmp_path / "repo"
    assert _export(repo, factory, case, "--weights", str(weights), *extra) == 0
    out = capsys.readouterr().out
    target = repo / case / "1"
    manifest = json.loads((target / "model.json").read_text())
    onnx_bytes = (target / "model.onnx").read_bytes()
    assert manifest["sha256"] == hashlib.sha256(onnx_bytes).hexdigest()
    sig = manifest["signature"]
    assert sig["data_input"]["name"] == "x"
    assert sig["data_input"]["shape"][:2] == ["batch", "time"]
    assert sig["data_output"] == {
        "name": "y",
        "shape": ["batch", "time", n_out],
        "dtype": "float32",
    }
    is_lstm = case != "gru-mlp"
    pairs = [("h0", "hn"), ("c0", "cn")] if is_lstm else [("h0", "hn")]
    assert [(p["input"], p["output"]) for p in sig["state"]] == pairs
    assert {(p["layers"], p["size"]) for p in sig["state"]} == {(layers, hidden)}
    assert manifest["cell"] == ("lstm" if is_lstm else "gru")
    assert manifest["training"]["exported_from"] == f"{MODULE}:{factory}"
    assert (
        manifest["training"]["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    )
    # the reference applies to a recurrent stack with one linear head, and says so otherwise
    if case in ("lstm-head", "nested-state"):
        assert "agrees with PyTorch and the NumPy reference" in out
    else:
        assert "NumPy reference not applicable" in out
    # the written graph, run by ONNX Runtime over 200 steps, is the user's module with its weights
    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    assert {n.op_type for n in _graph_nodes(onnx_bytes)} & {"LSTM", "GRU"}
    rng = np.random.default_rng(3)
    n_feat = sig["data_input"]["shape"][2]
    x = rng.standard_normal((2, 200, n_feat)).astype(np.float32)
    states = [rng.uniform(-1, 1, (layers, 2, hidden)).astype(np.float32) for _ in pairs]
    got = sess.run(None, {"x": x, **{p[0]: s for p, s in zip(pairs, states, strict=True)}})
    want = _torch_run(module, x, states)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=TOL, rtol=0)


def _graph_nodes(data: bytes) -> list[object]:
    import onnx

    return list(onnx.load_from_string(data).graph.node)


def test_served_module_steps_in_uneven_chunks_match_pytorch(tmp_path: Path) -> None:
    import torch

    module = _build("LSTMWithHead")
    weights = _weights(tmp_path, module, seed=7)
    repo = tmp_path / "repo"
    assert _export(repo, "LSTMWithHead", "mine", "--weights", str(weights)) == 0
    raw = np.random.default_rng(1).normal(0, 1, (17, 3)).astype(np.float32)
    with torch.no_grad():
        zeros = torch.zeros(2, 1, 16)
        want = module(torch.from_numpy(raw[None]), zeros, zeros)[0][0].numpy()
    server = ServerProcess.seqserve(repo, tmp_path).start()
    try:
        sid = httpx.post(f"{server.url}/v1/sessions", json={"model": "mine"}).json()["id"]
        got = []
        cuts = [0, 1, 5, 6, 13, 17]
        for lo, hi in zip(cuts, cuts[1:], strict=False):
            body = {"inputs": raw[lo:hi].tolist(), "step": lo}
            r = httpx.post(f"{server.url}/v1/sessions/{sid}/steps", json=body)
            assert r.status_code == 200, r.text
            assert r.json()["step"] == hi
            got.extend(r.json()["outputs"])
    finally:
        server.stop()
    np.testing.assert_allclose(np.array(got), want, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        ("Stateless", "forward(x) returned no state"),
        ("StateOutOnly", "forward does not take the states it returns"),
        ("bidirectional", "bidirectional LSTM"),
        ("time_major", "not batch_first"),
        ("not_a_module", "not a torch nn.Module"),
    ],
)
def test_a_module_that_breaks_the_contract_is_refused_and_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], factory: str, message: str
) -> None:
    repo = tmp_path / "repo"
    assert _export(repo, factory, "bad") == 1
    err = capsys.readouterr().err
    assert message in err
    assert not (repo / "bad").exists()


def test_weights_that_do_not_fit_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = _weights(tmp_path, _build("plain_lstm"), seed=1)
    repo = tmp_path / "repo"
    assert _export(repo, "LSTMWithHead", "m", "--weights", str(weights)) == 1
    assert "do not fit" in capsys.readouterr().err
    assert not (repo / "m").exists()


def test_versions_are_not_overwritten_and_name_is_required(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    args = ["--module-arg", "hidden=3", "--module-arg", "layers=2"]
    assert _export(repo, "sized", "g", *args) == 0
    first = json.loads((repo / "g" / "1" / "model.json").read_text())
    sha = first["sha256"]
    assert (first["signature"]["state"][0]["layers"], first["signature"]["state"][0]["size"]) == (
        2,
        3,
    )
    assert _export(repo, "sized", "g", "--version", "1") == 1
    assert "already exists" in capsys.readouterr().err
    assert json.loads((repo / "g" / "1" / "model.json").read_text())["sha256"] == sha
    assert _export(repo, "sized", "g", "--version", "1", "--force") == 0
    assert json.loads((repo / "g" / "1" / "model.json").read_text())["sha256"] != sha
    assert main(["export", "--module", f"{MODULE}:sized", "--repository", str(repo)]) == 2
    assert "needs --name" in capsys.readouterr().err


def test_a_features_file_names_the_inputs_and_sets_their_count(tmp_path: Path) -> None:
    repo, spec = tmp_path / "repo", tmp_path / "features.json"
    spec.write_text(json.dumps({"features": [{"name": "temp", "unit": "C"}, {"name": "load"}]}))
    assert _export(repo, "sized", "named", "--features", str(spec)) == 0
    manifest = json.loads((repo / "named" / "1" / "model.json").read_text())
    assert [f["name"] for f in manifest["features"]] == ["temp", "load"]
    assert manifest["signature"]["data_input"]["shape"] == ["batch", "time", 2]
