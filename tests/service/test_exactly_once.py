"""Step-index preconditions, replays and conflicts: no step is ever applied twice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from tests.service.conftest import co2_like, new_session, step
from tests.service.expected import Expected


def _metric(client: TestClient, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exported")


def test_replay_returns_stored_answer_without_advancing(client: TestClient, repo: Path) -> None:
    raw = co2_like(8)
    sid = new_session(client)["id"]
    first = step(client, sid, raw[:5].tolist(), step=0)
    again = step(client, sid, raw[:5].tolist(), step=0)
    assert again.status_code == 200
    assert again.json()["outputs"] == first.json()["outputs"]
    assert again.json()["step"] == 5
    assert again.json()["replayed"] is True
    assert again.headers["seqserve-replayed"] == "true"
    assert client.get(f"/v1/sessions/{sid}").json()["step"] == 5
    assert _metric(client, "seqserve_step_replays_total") == 1
    rest = step(client, sid, raw[5:].tolist(), step=5).json()["outputs"]
    np.testing.assert_allclose(rest, Expected(repo / "diffed" / "2").run(raw)[0][5:], atol=1e-5)


def test_same_index_different_inputs_is_a_conflict(client: TestClient) -> None:
    sid = new_session(client)["id"]
    step(client, sid, [[315.0], [316.0]], step=0)
    state = client.get(f"/v1/sessions/{sid}/state").json()
    r = step(client, sid, [[315.0], [316.5]], step=0)
    assert r.status_code == 409
    assert r.json()["current_step"] == 2
    assert "different inputs" in r.json()["detail"]
    assert client.get(f"/v1/sessions/{sid}/state").json() == state


def test_index_mismatch_states_current_index(client: TestClient) -> None:
    sid = new_session(client)["id"]
    step(client, sid, [[315.0]], step=0)
    step(client, sid, [[316.0]], step=1)
    for wrong in (0, 5):  # an older request than the last one, and a gap
        r = step(client, sid, [[317.0]], step=wrong)
        assert r.status_code == 409, r.text
        body = r.json()
        assert body["current_step"] == 2
        assert body["expected_step"] == wrong
        assert body["type"].endswith("/step-conflict")
    assert client.get(f"/v1/sessions/{sid}").json()["step"] == 2


def test_without_index_every_request_applies(client: TestClient) -> None:
    sid = new_session(client)["id"]
    for expected in (1, 2, 3):
        assert step(client, sid, [[315.0]]).json()["step"] == expected
