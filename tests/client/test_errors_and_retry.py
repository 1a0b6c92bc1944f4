"""The client's pure parts: problem details to typed exceptions, and when to resend."""

from __future__ import annotations

import random
import subprocess
import sys
from typing import Any

import pytest

from seqserve.client import (
    BadInput,
    Conflict,
    NotFound,
    Overloaded,
    SeqServeClientError,
    ServerError,
    SessionGone,
    StepConflict,
    Unauthorized,
)
from seqserve.client._retry import Retry, should_retry
from seqserve.client.errors import error_from

STEP_CONFLICT = {
    "type": "https://seqserve.dev/problems/step-conflict",
    "title": "Step index conflict",
    "status": 409,
    "detail": "request expects step 3 but the session is at step 5",
    "current_step": 5,
    "expected_step": 3,
}


def _problem(status: int, slug: str = "x") -> dict[str, Any]:
    return {"type": f"https://seqserve.dev/problems/{slug}", "status": status, "detail": "d"}


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, BadInput),
        (401, Unauthorized),
        (404, NotFound),
        (410, SessionGone),
        (413, BadInput),
        (422, BadInput),
        (429, Overloaded),
        (503, Overloaded),
        (500, ServerError),
        (418, SeqServeClientError),
    ],
)
def test_statuses_map_to_their_exception(status: int, kind: type[Exception]) -> None:
    error = error_from(status, _problem(status))
    assert type(error) is kind
    assert isinstance(error, SeqServeClientError)
    assert error.status == status


def test_a_step_conflict_carries_the_problem_fields() -> None:
    error = error_from(409, STEP_CONFLICT)
    assert isinstance(error, StepConflict)
    assert (error.current_step, error.expected_step) == (5, 3)
    assert error.detail == STEP_CONFLICT["detail"]
    assert error.problem["type"].endswith("/step-conflict")


def test_another_conflict_is_not_a_step_conflict() -> None:
    error = error_from(409, _problem(409, "conflict"))
    assert type(error) is Conflict


def test_retry_after_travels_on_overloaded() -> None:
    error = error_from(429, _problem(429, "capacity"), {"retry-after": "3"})
    assert isinstance(error, Overloaded)
    assert error.retry_after_s == 3.0


def test_v2_and_websocket_error_bodies() -> None:
    v2 = error_from(409, {"error": "current step 4", "parameters": {"sequence_step": 4}})
    assert isinstance(v2, StepConflict)
    assert v2.current_step == 4
    assert isinstance(error_from(400, {"error": "Unable to parse 'inputs'"}), BadInput)
    frame = error_from(500, {"error": STEP_CONFLICT, "id": 7})  # the frame's status wins
    assert isinstance(frame, StepConflict)


def test_a_body_that_is_not_json_still_maps() -> None:
    error = error_from(502, None)
    assert isinstance(error, ServerError)
    assert "502" in str(error)


def test_which_statuses_are_resent() -> None:
    assert [s for s in (400, 404, 409, 410, 422, 429, 500, 502, 503, 504) if should_retry(s)] == [
        429,
        502,
        503,
        504,
    ]


def test_backoff_stops_after_the_retry_budget() -> None:
    retry = Retry(retries=3, deadline_s=60.0, rng=random.Random(1))
    waits = [retry.delay() for _ in range(5)]
    assert all(w is not None and 0 <= w <= retry.cap_s for w in waits[:3])
    assert waits[3:] == [None, None]


def test_retry_after_is_a_floor_with_jitter() -> None:
    retry = Retry(retries=50, deadline_s=600.0, rng=random.Random(2))
    waits = [retry.delay(2.0) for _ in range(20)]
    assert all(w is not None and 2.0 <= w <= 2.2 for w in waits)
    assert len(set(waits)) > 1  # jittered: a crowd told the same number spreads out


def test_no_wait_runs_past_the_deadline() -> None:
    retry = Retry(retries=10, deadline_s=1.0, rng=random.Random(3))
    assert retry.delay(5.0) is None


def test_importing_the_client_pulls_in_no_server() -> None:
    code = (
        "import sys, seqserve.client\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('fastapi', 'starlette', 'uvicorn', 'onnxruntime', 'torch', 'pydantic')"
        " or m.startswith('seqserve.service')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
