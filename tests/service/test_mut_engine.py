"""Engine and input-check edges found by mutation testing (issue #19): bounds, replays, restarts."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from seqserve.service.api.context import app_context
from seqserve.service.app import create_app
from seqserve.service.runtime.layout import MAX_STEP
from seqserve.service.settings import Settings

from tests.service.clock import FakeClock
from tests.service.conftest import MakeClient, co2_like, new_session, step
from tests.service.v2.support import infer_body

A = {"X-API-Key": "key-a"}
B = {"X-API-Key": "key-b"}


def _stepped(client: TestClient, n: int = 12, **headers: str) -> str:
    sid = str(client.post("/v1/sessions", json={"model": "diffed"}, headers=headers).json()["id"])
    answer = client.post(
        f"/v1/sessions/{sid}/steps", json={"inputs": co2_like(n).tolist()}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    return sid


def _stream(client: TestClient, sid: str, horizon: int) -> tuple[list[list[float]], int]:
    """The SSE forecast's rows, and the step its end event reports."""
    answer = client.get(f"/v1/sessions/{sid}/forecast/stream?horizon={horizon}")
    assert answer.status_code == 200, answer.text
    events = [orjson.loads(line[6:]) for line in answer.text.splitlines() if line[:6] == "data: "]
    *rows, end = events
    assert [r["index"] for r in rows] == list(range(len(rows)))
    assert end["horizon"] == horizon
    return [r["forecast"] for r in rows], end["step"]


def test_the_forecast_stream_equals_the_forecast_across_chunks(client: TestClient) -> None:
    sid = _stepped(client)
    whole = client.post(f"/v1/sessions/{sid}/forecast", json={"horizon": 150}).json()
    for horizon in (1, 2, 64, 65, 150):  # one row, inside the first chunk, at and past its end
        rows, at = _stream(client, sid, horizon)
        assert len(rows) == horizon
        np.testing.assert_allclose(rows, whole["forecast"][:horizon], rtol=0, atol=1e-9)
        assert at == whole["step"] == 12


def _resign(doc: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A state document with fields changed and its checksum recomputed (as anyone can)."""
    doc = {**doc, **changes}
    digest = hashlib.sha256(f"{doc['model']}\0{doc['version']}\0{doc['step']}".encode())
    blobs = [base64.b64decode(t["data"]) for t in doc["tensors"].values()]
    blobs += [np.asarray(doc[k], "<f8").tobytes() for k in ("prev_x", "last_y")]
    for blob in blobs:
        digest.update(len(blob).to_bytes(8, "little"))
        digest.update(blob)
    doc["checksum"] = digest.hexdigest()
    return doc


def test_a_session_may_step_up_to_max_step_and_no_further(client: TestClient) -> None:
    doc = client.get(f"/v1/sessions/{_stepped(client)}/state").json()
    assert _resign(doc)["checksum"] == doc["checksum"]  # the helper signs as the server does
    near = new_session(client, state=_resign(doc, step=MAX_STEP - 2))["id"]
    assert step(client, near, [[315.0], [315.5]]).json()["step"] == MAX_STEP
    over = step(client, near, [[316.0]])
    assert over.status_code == 422, over.text
    assert over.json()["max_step"] == MAX_STEP
    short = new_session(client, state=_resign(doc, step=MAX_STEP - 1))["id"]
    two = step(client, short, [[315.0], [315.5]])  # one more than there is room for
    assert two.status_code == 422, two.text
    assert two.json()["current_step"] == MAX_STEP - 1
    assert client.get(f"/v1/sessions/{short}").json()["step"] == MAX_STEP - 1


def test_an_imported_carry_may_sit_exactly_on_the_bound(client: TestClient) -> None:
    doc = client.get(f"/v1/sessions/{_stepped(client)}/state").json()
    engine = app_context(client.app).engine  # type: ignore[arg-type]
    bound = engine.registry.get("diffed", doc["version"]).transform.max_abs
    edge = client.post("/v1/sessions", json={"state": _resign(doc, prev_x=[bound])})
    assert edge.status_code == 201, edge.text
    past = client.post("/v1/sessions", json={"state": _resign(doc, prev_x=[bound * 1.01])})
    assert past.status_code == 422, past.text


def test_a_state_document_refuses_the_other_version(client: TestClient) -> None:
    for mine, other in (("1", "2"), ("2", "1")):
        sid = new_session(client, version=mine)["id"]
        step(client, sid, [[315.0]])
        doc = client.get(f"/v1/sessions/{sid}/state").json()
        answer = client.post("/v1/sessions", json={"version": other, "state": doc})
        assert answer.status_code == 422, answer.text
        assert f"version '{mine}'" in answer.json()["detail"]


def test_steps_are_counted_by_timestep(client: TestClient) -> None:
    sid = new_session(client)["id"]
    assert step(client, sid, co2_like(3).tolist()).status_code == 200
    text = client.get("/metrics").text
    assert 'seqserve_steps_total{model="diffed"} 3.0' in text


def test_a_retry_that_starts_mid_chunk_is_a_conflict_not_an_earlier_answer(
    client: TestClient,
) -> None:
    sid = new_session(client)["id"]
    first = [[315.0], [315.5]]
    assert step(client, sid, first, step=0).json()["step"] == 2
    assert step(client, sid, [[316.0]], step=2).json()["step"] == 3
    # index 1 began no request: even with the inputs of the one at 0, nothing is replayed
    mid = step(client, sid, first, step=1)
    assert mid.status_code == 409, mid.text
    assert mid.json()["current_step"] == 3


def test_a_retry_with_other_inputs_is_always_a_conflict(client: TestClient) -> None:
    sid = new_session(client)["id"]
    applied = step(client, sid, [[315.0]], step=0).json()
    # digests order at random: some of these sort below the applied one's, some above
    for value in (314.0, 314.5, 315.5, 316.0, 316.5, 317.0):
        again = step(client, sid, [[value]], step=0)
        assert again.status_code == 409, (value, again.text)
    same = step(client, sid, [[315.0]], step=0).json()
    assert same["outputs"] == applied["outputs"]
    assert same["step"] == 1


def test_sessions_are_hidden_from_other_keys_both_ways(make_client: MakeClient) -> None:
    client = make_client(security={"api_keys": ["key-a", "key-b"]})
    for mine, theirs in ((A, B), (B, A)):
        sid = new_session_as(client, mine)
        assert client.get(f"/v1/sessions/{sid}", headers=theirs).status_code == 404
        assert client.get(f"/v1/sessions/{sid}", headers=mine).status_code == 200


def new_session_as(client: TestClient, headers: dict[str, str]) -> str:
    answer = client.post("/v1/sessions", json={"model": "diffed"}, headers=headers)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def test_limits_are_inclusive(make_client: MakeClient) -> None:
    limits = {"max_batch": 2, "max_predict_steps": 6, "max_horizon": 8, "max_output_values": 6}
    client = make_client(limits=limits)
    seqs = [co2_like(3).tolist(), co2_like(3, seed=1).tolist()]  # 2 sequences, 6 steps in all
    assert client.post("/v1/models/diffed/predict", json={"inputs": seqs}).status_code == 200
    sid = _stepped(client, n=3)
    for horizon, status in ((1, 200), (6, 200), (7, 422)):  # 6 values is the output cap
        answer = client.post(f"/v1/sessions/{sid}/forecast", json={"horizon": horizon})
        assert answer.status_code == status, (horizon, answer.text)
        if status == 200:
            assert len(answer.json()["forecast"]) == horizon
    roomy = make_client(limits={"max_horizon": 8})
    sid = _stepped(roomy, n=3)
    for horizon, status in ((8, 200), (9, 422)):
        answer = roomy.post(f"/v1/sessions/{sid}/forecast", json={"horizon": horizon})
        assert answer.status_code == status, (horizon, answer.text)


def test_ttls_are_accepted_up_to_their_caps(make_client: MakeClient) -> None:
    caps = {"max_idle_ttl_s": 60, "idle_ttl_s": 30, "max_ttl_s": 120, "ttl_s": 100}
    client = make_client(sessions=caps)
    for idle, total, status in (
        (60, 120, 201),
        (0.5, 0.75, 201),
        (61, 100, 422),
        (30, 121, 422),
    ):
        body = {"model": "diffed", "idle_ttl_s": idle, "ttl_s": total}
        answer = client.post("/v1/sessions", json=body)
        assert answer.status_code == status, (idle, total, answer.text)
        if status == 201:
            assert (answer.json()["idle_ttl_s"], answer.json()["ttl_s"]) == (idle, total)


V2_URL = "/v2/models/multi/infer"


def _infer(client: TestClient, values: list[float], headers: dict[str, str], **params: Any) -> Any:
    body = infer_body(values, [1, len(values) // 3, 3], **params)
    answer = client.post(V2_URL, content=orjson.dumps(body), headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize("headers", [A, {}], ids=["keyed", "open"])
def test_starting_a_live_sequence_again_starts_it_from_zero(
    make_client: MakeClient, headers: dict[str, str]
) -> None:
    client = make_client(security={"api_keys": ["key-a"]}) if headers else make_client()
    first = _infer(client, [0.1, 0.2, 0.3], headers, sequence_id=5, sequence_start=True)
    _infer(client, [0.9, 0.8, 0.7] * 2, headers, sequence_id=5)
    again = _infer(client, [0.1, 0.2, 0.3], headers, sequence_id=5, sequence_start=True)
    assert again["outputs"] == first["outputs"]
    assert again["parameters"]["sequence_step"] == 1


def test_an_expired_sequence_can_be_started_again(
    make_client: MakeClient, clock: FakeClock
) -> None:
    client = make_client(sessions={"idle_ttl_s": 30})
    first = _infer(client, [0.1, 0.2, 0.3], {}, sequence_id="old", sequence_start=True)
    clock.advance(31)
    again = _infer(client, [0.1, 0.2, 0.3], {}, sequence_id="old", sequence_start=True)
    assert again["outputs"] == first["outputs"]
    assert again["parameters"]["sequence_step"] == 1


def test_a_request_may_carry_exactly_the_timestep_limit(make_client: MakeClient) -> None:
    client = make_client(limits={"max_steps_per_request": 5})
    sid = new_session(client)["id"]
    for n, status in ((5, 200), (6, 422)):
        answer = client.post(f"/v1/sessions/{sid}/steps", json={"inputs": co2_like(n).tolist()})
        assert answer.status_code == status, (n, answer.text)
    assert client.get(f"/v1/sessions/{sid}").json()["step"] == 5  # the refused one changed nothing


def test_inputs_exactly_at_the_models_bound_are_accepted(make_client: MakeClient) -> None:
    client = make_client()
    sid = new_session(client)["id"]
    refused = client.post(f"/v1/sessions/{sid}/steps", json={"inputs": [[1e300]]})
    assert refused.status_code == 422, refused.text
    bound = refused.json()["max_abs"]
    for value, status in ((bound, 200), (-bound, 200), (float(np.nextafter(bound, np.inf)), 422)):
        answer = client.post(f"/v1/sessions/{sid}/steps", json={"inputs": [[value]]})
        assert answer.status_code == status, (value, answer.text)


def test_the_output_cap_counts_every_output_of_a_forecast(make_client: MakeClient) -> None:
    """multi predicts its 3 features: a horizon of 2 is 6 values, of 3 is 9."""
    client = make_client(limits={"max_horizon": 8, "max_output_values": 6})
    sid = str(client.post("/v1/sessions", json={"model": "multi"}).json()["id"])
    stepped = client.post(f"/v1/sessions/{sid}/steps", json={"inputs": [[0.5, 1.0, 2.0]] * 3})
    assert stepped.status_code == 200, stepped.text
    for horizon, status in ((2, 200), (3, 422)):
        answer = client.post(f"/v1/sessions/{sid}/forecast", json={"horizon": horizon})
        assert answer.status_code == status, (horizon, answer.text)


def test_an_unloaded_version_stops_its_batcher_and_a_shutdown_stops_the_rest(repo: Path) -> None:
    """No batcher task outlives its version, nor the app."""
    with TestClient(create_app(Settings(model_repository=repo))) as client:
        engine = app_context(client.app).engine  # type: ignore[arg-type]
        for model in ("diffed", "multi"):
            sid = new_session(client, model)["id"]
            width = 1 if model == "diffed" else 3
            answer = client.post(f"/v1/sessions/{sid}/steps", json={"inputs": [[0.5] * width]})
            assert answer.status_code == 200, answer.text
        batchers = dict(engine._batchers)
        (diffed,) = (key for key in batchers if key[0] == "diffed")
        answer = client.post("/v1/models/diffed/unload", json={"version": diffed[1]})
        assert answer.status_code == 200, answer.text
        assert diffed not in engine._batchers
        stopped = batchers.pop(diffed)._task
        assert stopped is not None
        assert stopped.done()
        assert [b._task is not None and not b._task.done() for b in batchers.values()] == [True]
    assert all(b._task is not None and b._task.done() for b in batchers.values())
