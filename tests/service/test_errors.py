"""Every error path: a clear 4xx problem document, and no state changed anywhere."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from seqserve.service.api.context import app_context
from seqserve.service.state.codec import decode_state, encode_state

from tests.service.conftest import MakeClient, new_session, step

BAD_STEPS: list[tuple[Any, int, str]] = [
    ({"inputs": [[1.0, 2.0]]}, 422, "expected_features"),  # wrong feature count
    ({"inputs": []}, 422, "expected_features"),  # no timesteps
    ({"inputs": [[]]}, 422, "expected_features"),
    ({"inputs": [[1.0], [2.0, 3.0]]}, 422, "ragged"),
    ({"inputs": [[True]]}, 422, "valid number"),
    ({"inputs": [["1.5"]]}, 422, "valid number"),
    ({"inputs": [[None]]}, 422, "valid number"),
    ({"inputs": [1.0]}, 422, "list_type"),
    ({"inputs": "abc"}, 422, "list_type"),
    ({}, 422, "Field required"),
    ({"inputs": [[1.0]], "step": -1}, 422, "greater than or equal"),
    ({"inputs": [[1.0]], "step": "x"}, 422, "valid integer"),
    ({"inputs": [[1.0]], "extra": 1}, 422, "Extra inputs"),
    ({"inputs": [[1.0]] * 5000}, 422, "max_timesteps"),
    ([1, 2], 422, "model_type"),
]


@pytest.mark.parametrize(("body", "status", "needle"), BAD_STEPS)
def test_bad_step_bodies(client: TestClient, body: Any, status: int, needle: str) -> None:
    sid = new_session(client)["id"]
    step(client, sid, [[315.0]])
    before = client.get(f"/v1/sessions/{sid}/state").json()
    r = client.post(f"/v1/sessions/{sid}/steps", json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert {"type", "title", "status", "detail"} <= set(problem)
    assert problem["status"] == status
    assert needle in r.text
    assert client.get(f"/v1/sessions/{sid}/state").json() == before


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_numbers_are_refused(client: TestClient, literal: bytes) -> None:
    sid = new_session(client)["id"]
    body = b'{"inputs": [[' + literal + b"]]}"
    r = client.post(
        f"/v1/sessions/{sid}/steps", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert "NaN or Infinity" in r.json()["detail"]
    assert client.get(f"/v1/sessions/{sid}").json()["step"] == 0


def test_malformed_json_is_400(client: TestClient) -> None:
    sid = new_session(client)["id"]
    r = client.post(
        f"/v1/sessions/{sid}/steps", content=b"{bad", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json()["type"].endswith("/malformed-request")


def test_body_over_the_limit_is_413(make_client: MakeClient) -> None:
    client = make_client(limits={"max_body_bytes": 2048})
    sid = new_session(client)["id"]
    r = step(client, sid, [[315.0]] * 400)
    assert r.status_code == 413
    assert r.json()["max_body_bytes"] == 2048
    chunked = client.post(
        f"/v1/sessions/{sid}/steps",
        content=iter([b'{"inputs": [', b"[1.0]," * 500, b"[1.0]]}"]),
        headers={"content-type": "application/json"},
    )
    assert chunked.status_code == 413
    assert client.get(f"/v1/sessions/{sid}").json()["step"] == 0


def test_unknown_things_are_404(client: TestClient) -> None:
    assert client.post("/v1/sessions", json={"model": "nope"}).status_code == 404
    r = client.post("/v1/sessions", json={"model": "diffed", "version": "7"})
    assert r.status_code == 404
    assert r.json()["available"] == ["1", "2"]
    assert step(client, "x" * 30, [[1.0]]).status_code == 404
    assert client.post("/v1/sessions/nope/forecast", json={"horizon": 1}).status_code == 404
    assert client.get("/v1/nothing-here").status_code == 404
    assert client.get("/v1/nothing-here").headers["content-type"] == "application/problem+json"
    assert client.put("/v1/sessions").status_code == 405


@pytest.mark.parametrize(
    "body",
    [{"horizon": 0}, {"horizon": 10**6}, {"horizon": 1.5}, {"horizon": True}, {}],
)
def test_bad_forecast_bodies(client: TestClient, body: Any) -> None:
    sid = new_session(client)["id"]
    step(client, sid, [[315.0]])
    assert client.post(f"/v1/sessions/{sid}/forecast", json=body).status_code == 422


def test_other_sessions_are_untouched_by_bad_requests(client: TestClient) -> None:
    good = new_session(client)["id"]
    step(client, good, [[315.0], [316.0]])
    before = client.get(f"/v1/sessions/{good}/state").json()
    bad = new_session(client)["id"]
    for body, _, _ in BAD_STEPS:
        client.post(f"/v1/sessions/{bad}/steps", json=body)
    assert client.get(f"/v1/sessions/{good}/state").json() == before


def test_values_beyond_the_models_range_are_refused(client: TestClient) -> None:
    sid = new_session(client)["id"]
    r = step(client, sid, [[1e39]])
    assert r.status_code == 422
    assert "max_abs" in r.json()
    predict = client.post("/v1/models/diffed/predict", json={"inputs": [[[-1e300]]]})
    assert predict.status_code == 422
    step(client, sid, [[315.0]])
    doc = client.get(f"/v1/sessions/{sid}/state").json()
    model = app_context(client.app).engine.registry.get("diffed")  # type: ignore[arg-type]
    step_index, rows = decode_state(doc, model.state_names, model.layout)
    rows.prev_x[:] = 1e300  # a well-formed document (valid checksum) with an absurd carry
    forged = encode_state("diffed", "2", step_index, model.state_names, rows)
    r = client.post("/v1/sessions", json={"state": forged})
    assert r.status_code == 422
    assert "prev_x" in r.json()["detail"]
    assert client.get(f"/v1/sessions/{sid}").json()["step"] == 1


def test_a_body_not_labelled_json_gets_a_hint(client: TestClient) -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}  # curl -d's default
    r = client.post("/v1/sessions", content=b'{"model": "diffed"}', headers=form)
    assert r.status_code == 415
    assert "Content-Type: application/json" in r.json()["detail"]
    labelled = {"content-type": "application/json"}
    r = client.post("/v1/sessions", content=b'{"model": "diffed"}', headers=labelled)
    assert r.status_code == 201
