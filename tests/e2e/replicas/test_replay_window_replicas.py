"""The reply window shared through Redis: a request applied on one replica is replayed on
another, for each of the session's last `replay_depth` (8) requests; older ones are 409s."""

from __future__ import annotations

import httpx
import numpy as np

from scripts.launch import ServerProcess

DEPTH = 8


def test_any_replica_replays_the_last_n_requests(replicas: list[ServerProcess]) -> None:
    first, second, _ = replicas
    rng = np.random.default_rng(7)
    sid = httpx.post(f"{first.url}/v1/sessions", json={"model": "multi"}).json()["id"]
    done, start = [], 0
    for length in [1, 2, 1, 3, 1, 1, 2, 1, 1, 2]:  # ten requests
        inputs = rng.normal(size=(length, 3)).tolist()
        body = {"inputs": inputs, "step": start}
        answer = httpx.post(f"{first.url}/v1/sessions/{sid}/steps", json=body)
        assert answer.status_code == 200, answer.text
        done.append((body, answer.json()))
        start += length
    for body, answer in done[-DEPTH:]:
        again = httpx.post(f"{second.url}/v1/sessions/{sid}/steps", json=body)
        assert again.status_code == 200, again.text
        assert again.json() == {**answer, "replayed": True}
    body, _ = done[-DEPTH - 1]
    older = httpx.post(f"{second.url}/v1/sessions/{sid}/steps", json=body)
    assert older.status_code == 409, older.text
    assert older.json()["current_step"] == start
    body, _ = done[-1]
    other = {**body, "inputs": (np.asarray(body["inputs"]) + 1).tolist()}
    assert httpx.post(f"{second.url}/v1/sessions/{sid}/steps", json=other).status_code == 409
    assert httpx.get(f"{second.url}/v1/sessions/{sid}").json()["step"] == start
