"""Session lifecycle over HTTP, checked against the NumPy reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.service.conftest import co2_like, new_session, step
from tests.service.expected import Expected

TOL = 1e-5


def test_create_get_list_delete(client: TestClient) -> None:
    created = new_session(client)
    assert created["step"] == 0
    assert created["model"] == "diffed"
    assert created["version"] == "2"
    assert len(created["id"]) >= 22  # >= 128 random bits in URL-safe base64
    assert client.get(f"/v1/sessions/{created['id']}").json()["id"] == created["id"]
    ids = [s["id"] for s in client.get("/v1/sessions").json()["sessions"]]
    assert created["id"] in ids
    assert client.delete(f"/v1/sessions/{created['id']}").status_code == 204
    gone = client.get(f"/v1/sessions/{created['id']}")
    assert gone.status_code == 404
    assert gone.headers["content-type"] == "application/problem+json"
    assert created["id"] not in [s["id"] for s in client.get("/v1/sessions").json()["sessions"]]


@pytest.mark.parametrize("model", ["diffed", "multi", "gru"])
def test_steps_match_reference(client: TestClient, repo: Path, model: str) -> None:
    version = "2" if model == "diffed" else "1"
    exp = Expected(repo / model / version)
    n_feat = len(exp.manifest.features)
    rng = np.random.default_rng(7)
    raw = co2_like(40) if n_feat == 1 else rng.normal(0, 2, (40, n_feat))
    want, _ = exp.run(raw)
    sid = new_session(client, model)["id"]
    got = []
    for start, stop in ((0, 1), (1, 17), (17, 18), (18, 40)):
        r = step(client, sid, raw[start:stop].tolist(), step=start)
        assert r.status_code == 200, r.text
        assert r.json()["step"] == stop
        got.extend(r.json()["outputs"])
    np.testing.assert_allclose(np.array(got), want, atol=TOL, rtol=0)


def test_forecast_leaves_state_unchanged(client: TestClient, repo: Path) -> None:
    exp = Expected(repo / "diffed" / "2")
    raw = co2_like(30)
    sid = new_session(client)["id"]
    step(client, sid, raw[:20].tolist())
    before = client.get(f"/v1/sessions/{sid}/state").json()
    fc = client.post(f"/v1/sessions/{sid}/forecast", json={"horizon": 5})
    assert fc.status_code == 200, fc.text
    assert fc.json()["step"] == 20
    np.testing.assert_allclose(fc.json()["forecast"], exp.forecast(raw[:20], 5), atol=TOL)
    assert client.get(f"/v1/sessions/{sid}/state").json() == before
    # and stepping on afterwards is as if the forecast never happened
    out = step(client, sid, raw[20:].tolist(), step=20).json()["outputs"]
    np.testing.assert_allclose(out, exp.run(raw)[0][20:], atol=TOL)


def test_forecast_needs_a_step_and_a_forecastable_model(client: TestClient) -> None:
    sid = new_session(client)["id"]
    r = client.post(f"/v1/sessions/{sid}/forecast", json={"horizon": 3})
    assert r.status_code == 409
    assert r.json()["current_step"] == 0
    gru = new_session(client, "gru")["id"]
    step(client, gru, [[1.0, 2.0]])
    r = client.post(f"/v1/sessions/{gru}/forecast", json={"horizon": 3})
    assert r.status_code == 422
    assert "does not offer forecasts" in r.json()["detail"]


def test_reset_starts_over(client: TestClient, repo: Path) -> None:
    exp = Expected(repo / "diffed" / "2")
    raw = co2_like(12)
    sid = new_session(client)["id"]
    step(client, sid, co2_like(9, seed=5).tolist())
    reset = client.post(f"/v1/sessions/{sid}/reset")
    assert reset.status_code == 200
    assert reset.json()["step"] == 0
    out = step(client, sid, raw.tolist(), step=0).json()["outputs"]
    np.testing.assert_allclose(out, exp.run(raw)[0], atol=TOL)


def test_fork_and_state_round_trip_continue_identically(client: TestClient, repo: Path) -> None:
    exp = Expected(repo / "diffed" / "2")
    raw = co2_like(25)
    want = exp.run(raw)[0][10:]
    sid = new_session(client)["id"]
    step(client, sid, raw[:10].tolist())
    fork = client.post(f"/v1/sessions/{sid}/fork")
    assert fork.status_code == 201
    assert fork.json()["step"] == 10
    doc = client.get(f"/v1/sessions/{sid}/state").json()
    imported = client.post("/v1/sessions", json={"state": doc})
    assert imported.status_code == 201
    assert imported.json()["step"] == 10
    for other in (sid, fork.json()["id"], imported.json()["id"]):
        out = step(client, other, raw[10:].tolist(), step=10).json()["outputs"]
        np.testing.assert_allclose(out, want, atol=TOL)


def test_state_import_is_refused_when_altered(client: TestClient) -> None:
    sid = new_session(client)["id"]
    step(client, sid, co2_like(3).tolist())
    doc = client.get(f"/v1/sessions/{sid}/state").json()
    tampered = {**doc, "step": doc["step"] + 1}
    r = client.post("/v1/sessions", json={"state": tampered})
    assert r.status_code == 422
    assert "checksum" in r.json()["detail"]
    wrong_model = client.post("/v1/sessions", json={"state": doc, "model": "multi"})
    assert wrong_model.status_code == 422
    assert client.post("/v1/sessions", json={"state": {"format": "x"}}).status_code == 422


def test_version_pinning(client: TestClient, repo: Path) -> None:
    raw = co2_like(6)
    v1 = new_session(client, version="1")
    assert v1["version"] == "1"
    out = step(client, v1["id"], raw.tolist()).json()["outputs"]
    np.testing.assert_allclose(out, Expected(repo / "diffed" / "1").run(raw)[0], atol=TOL)
    assert client.get(f"/v1/sessions/{v1['id']}").json()["version"] == "1"


def test_models_listing_and_metadata(client: TestClient) -> None:
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert set(models) == {"diffed", "multi", "gru"}
    assert models["diffed"]["versions"] == ["1", "2"]
    assert models["diffed"]["latest"] == "2"
    meta = client.get("/v1/models/multi").json()
    assert meta["signature"]["state"][0]["layers"] == 2
    assert len(meta["features"]) == 3
    assert meta["forecastable"] is True
    assert client.get("/v1/models/diffed", params={"version": "1"}).json()["version"] == "1"
    assert client.get("/v1/models/nope").status_code == 404
    assert client.get("/v1/models/diffed", params={"version": "9"}).status_code == 404


def test_listing_is_bounded(client: TestClient) -> None:
    ids = {new_session(client)["id"] for _ in range(5)}
    page = client.get("/v1/sessions", params={"limit": 3}).json()
    assert len(page["sessions"]) == 3
    assert page["truncated"] is True
    assert {s["id"] for s in page["sessions"]} <= ids
    whole = client.get("/v1/sessions").json()
    assert whole["truncated"] is False
    assert {s["id"] for s in whole["sessions"]} == ids
    assert client.get("/v1/sessions", params={"limit": 0}).status_code == 422
