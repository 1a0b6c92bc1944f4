"""The reply window: a retry of any of a session's last `replay_depth` applied requests gets
its stored answer and that request's end step; anything older, or other inputs, is a 409."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from tests.service.conftest import MakeClient, co2_like, new_session, step

DEPTH = 3
LENGTHS = [1, 2, 1, 3, 1]  # five requests, at starts 0, 1, 3, 4, 7


def _five(client: TestClient) -> tuple[str, list[tuple[int, list[Any], Any]]]:
    """A session stepped by five requests: (start, inputs, answer) of each."""
    sid = new_session(client)["id"]
    raw, start, done = co2_like(sum(LENGTHS)), 0, []
    for length in LENGTHS:
        inputs = raw[start : start + length].tolist()
        answer = step(client, sid, inputs, step=start)
        assert answer.status_code == 200, answer.text
        done.append((start, inputs, answer.json()))
        start += length
    return sid, done


def test_each_of_the_last_n_requests_is_replayed_with_its_own_step(
    make_client: MakeClient,
) -> None:
    client = make_client(sessions={"replay_depth": DEPTH})
    sid, done = _five(client)
    state = client.get(f"/v1/sessions/{sid}/state").json()
    for start, inputs, first in done[-DEPTH:]:
        again = step(client, sid, inputs, step=start)
        assert again.status_code == 200, again.text
        assert again.json() == {**first, "replayed": True}
        assert again.json()["step"] == start + len(inputs)
    assert client.get(f"/v1/sessions/{sid}/state").json() == state


def test_an_older_request_or_other_inputs_is_a_conflict(make_client: MakeClient) -> None:
    client = make_client(sessions={"replay_depth": DEPTH})
    sid, done = _five(client)
    state = client.get(f"/v1/sessions/{sid}/state").json()
    start, inputs, _ = done[-DEPTH - 1]  # one beyond the window
    r = step(client, sid, inputs, step=start)
    assert r.status_code == 409, r.text
    assert (r.json()["current_step"], r.json()["expected_step"]) == (8, start)
    start, inputs, _ = done[-2]  # in the window, other inputs
    r = step(client, sid, (np.asarray(inputs) + 1.0).tolist(), step=start)
    assert r.status_code == 409, r.text
    assert "different inputs" in r.json()["detail"]
    assert client.get(f"/v1/sessions/{sid}/state").json() == state


def test_depth_one_keeps_only_the_last_answer(make_client: MakeClient) -> None:
    client = make_client(sessions={"replay_depth": 1})
    sid, done = _five(client)
    start, inputs, first = done[-1]
    assert step(client, sid, inputs, step=start).json() == {**first, "replayed": True}
    start, inputs, _ = done[-2]
    assert step(client, sid, inputs, step=start).status_code == 409


def test_a_fork_or_a_reset_keeps_no_answers(make_client: MakeClient) -> None:
    client = make_client(sessions={"replay_depth": DEPTH})
    sid, done = _five(client)
    child = client.post(f"/v1/sessions/{sid}/fork").json()["id"]
    start, inputs, _ = done[-2]
    assert step(client, child, inputs, step=start).status_code == 409  # a new session
    assert client.post(f"/v1/sessions/{sid}/reset").status_code == 200
    # back to step 8 in one request: the answers kept before the reset must not answer now
    assert step(client, sid, co2_like(8, seed=1).tolist(), step=0).status_code == 200
    assert step(client, sid, inputs, step=start).status_code == 409
