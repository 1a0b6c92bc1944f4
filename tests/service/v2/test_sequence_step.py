"""The `sequence_step` extension: V2 sequence steps exactly once, as v1's `step`."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.service.v2.support import infer_body

pytestmark = pytest.mark.service

URL = "/v2/models/multi/infer"


def _infer(v2: TestClient, values: list[float], **params: Any) -> Any:
    body = infer_body(values, [1, len(values) // 3, 3], **params)
    return v2.post(URL, content=orjson.dumps(body))


def _session_step(v2: TestClient, seq_id: str) -> int:
    # the V2 session is an engine session: a plain step without the extension reads its index
    answer = _infer(v2, [0.0] * 3, sequence_id=seq_id)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["parameters"]["sequence_step"]) - 1


def test_metadata_lists_the_extension(v2: TestClient) -> None:
    assert "sequence_step" in v2.get("/v2").json()["extensions"]


def test_a_resent_request_is_replayed_not_applied_twice(v2: TestClient) -> None:
    first = _infer(v2, [0.1] * 6, sequence_id="replay", sequence_start=True, sequence_step=0)
    assert first.status_code == 200, first.text
    assert first.json()["parameters"] == {"sequence_step": 2}
    second = _infer(v2, [0.2, 0.3, 0.4], sequence_id="replay", sequence_step=2)
    again = _infer(v2, [0.2, 0.3, 0.4], sequence_id="replay", sequence_step=2)
    assert again.status_code == 200, again.text
    assert again.json()["parameters"] == {"sequence_step": 3, "sequence_replayed": True}
    assert again.json()["outputs"] == second.json()["outputs"]
    assert _session_step(v2, "replay") == 3  # the resend did not advance the state


def test_a_mismatch_is_a_409_that_states_the_current_step(v2: TestClient) -> None:
    _infer(v2, [0.1] * 3, sequence_id=77, sequence_start=True, sequence_step=0)
    ahead = _infer(v2, [0.2] * 3, sequence_id=77, sequence_step=5)
    assert ahead.status_code == 409, ahead.text
    assert "current step 1" in ahead.json()["error"]
    assert ahead.json()["parameters"] == {"sequence_step": 1}
    # the same index with other inputs than the applied request: refused too, nothing applied
    changed = _infer(v2, [0.9] * 3, sequence_id=77, sequence_step=0)
    assert changed.status_code == 409, changed.text
    assert _session_step(v2, 77) == 1


def test_without_the_parameter_requests_behave_as_before(v2: TestClient) -> None:
    _infer(v2, [0.1] * 3, sequence_id="plain", sequence_start=True)
    again = _infer(v2, [0.1] * 3, sequence_id="plain")
    assert again.status_code == 200
    assert again.json()["parameters"] == {"sequence_step": 2}  # applied, not replayed


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"sequence_id": "x", "sequence_start": True, "sequence_step": -1}, "sequence_step"),
        ({"sequence_id": "x", "sequence_start": True, "sequence_step": "0"}, "sequence_step"),
        ({"sequence_id": "x", "sequence_start": True, "sequence_step": 1.0}, "sequence_step"),
        ({"sequence_id": "x", "sequence_start": True, "sequence_step": True}, "sequence_step"),
        ({"sequence_id": "x", "sequence_start": True, "sequence_step": 2**53}, "sequence_step"),
        ({"sequence_id": "x", "sequence_start": True, "sequence_step": 4}, "starts at"),
        ({"sequence_step": 0}, "give a 'sequence_id'"),
    ],
)
def test_bad_values_are_a_400(v2: TestClient, params: dict[str, Any], fragment: str) -> None:
    answer = _infer(v2, [0.1] * 3, **params)
    assert answer.status_code == 400, answer.text
    assert fragment in answer.json()["error"]
