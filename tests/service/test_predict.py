"""Stateless predict: whole sequences from zero state, optional forecast horizon."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from tests.service.conftest import co2_like, new_session, step
from tests.service.expected import Expected

TOL = 1e-5


def test_ragged_batch_matches_reference(client: TestClient, repo: Path) -> None:
    exp = Expected(repo / "diffed" / "2")
    seqs = [co2_like(n, seed=n) for n in (5, 1, 12, 5)]
    r = client.post("/v1/models/diffed/predict", json={"inputs": [s.tolist() for s in seqs]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == "2"
    assert "forecast" not in body
    for seq, out in zip(seqs, body["outputs"], strict=True):
        np.testing.assert_allclose(out, exp.run(seq)[0], atol=TOL)


def test_last_only_and_forecast(client: TestClient, repo: Path) -> None:
    exp = Expected(repo / "diffed" / "1")
    seqs = [co2_like(20, seed=1), co2_like(8, seed=2)]
    r = client.post(
        "/v1/models/diffed/predict",
        json={
            "inputs": [s.tolist() for s in seqs],
            "version": "1",
            "horizon": 4,
            "return_sequences": False,
        },
    )
    assert r.status_code == 200, r.text
    for seq, out, fc in zip(seqs, r.json()["outputs"], r.json()["forecast"], strict=True):
        np.testing.assert_allclose(out, exp.run(seq)[0][-1:], atol=TOL)
        np.testing.assert_allclose(fc, exp.forecast(seq, 4), atol=TOL)


def test_predict_and_a_session_fed_the_same_sequence_match_the_reference(
    client: TestClient, repo: Path
) -> None:
    exp = Expected(repo / "multi" / "1")
    seq = np.random.default_rng(0).normal(0, 1, (30, 3))
    want, want_fc = exp.run(seq)[0], exp.forecast(seq, 3)
    pred = client.post("/v1/models/multi/predict", json={"inputs": [seq.tolist()], "horizon": 3})
    assert pred.status_code == 200, pred.text
    np.testing.assert_allclose(pred.json()["outputs"][0], want, atol=TOL)
    np.testing.assert_allclose(pred.json()["forecast"][0], want_fc, atol=TOL)
    sid = new_session(client, "multi")["id"]
    out = step(client, sid, seq.tolist()).json()["outputs"]
    fc = client.post(f"/v1/sessions/{sid}/forecast", json={"horizon": 3}).json()["forecast"]
    np.testing.assert_allclose(out, want, atol=TOL)
    np.testing.assert_allclose(fc, want_fc, atol=TOL)


def test_predict_limits_and_errors(client: TestClient) -> None:
    url = "/v1/models/diffed/predict"
    assert client.post(url, json={"inputs": []}).status_code == 422
    assert client.post(url, json={"inputs": [[[1.0, 2.0]]]}).status_code == 422
    assert client.post(url, json={"inputs": [[[1.0]], [[1.0], [2.0, 3.0]]]}).status_code == 422
    assert client.post(url, json={"inputs": [[[1.0]]] * 257}).status_code == 422
    assert client.post(url, json={"inputs": [[[1.0]]], "horizon": 0}).status_code == 422
    gru = client.post("/v1/models/gru/predict", json={"inputs": [[[1.0, 2.0]]], "horizon": 2})
    assert gru.status_code == 422
    assert client.post("/v1/models/nope/predict", json={"inputs": [[[1.0]]]}).status_code == 404
