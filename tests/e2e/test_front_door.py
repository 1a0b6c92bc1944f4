"""The front door against a real uvicorn server: header rules the HTTP layer decides."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scripts.launch import ServerProcess

pytestmark = pytest.mark.e2e

A, B = "key-a", "key-b"


@pytest.fixture(scope="module")
def keyed(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"SEQSERVE_SECURITY__API_KEYS": json.dumps([A, B])}
    server = ServerProcess.seqserve(repo, tmp_path_factory.mktemp("front-door"), **env).start()
    yield server
    server.stop()


def _session(server: ServerProcess) -> str:
    r = httpx.post(f"{server.url}/v1/sessions", json={"model": "diffed"}, headers={"X-API-Key": A})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _step_index(server: ServerProcess, sid: str) -> int:
    r = httpx.get(f"{server.url}/v1/sessions/{sid}", headers={"X-API-Key": A})
    assert r.status_code == 200, r.text
    return int(r.json()["step"])


@pytest.mark.parametrize("keys", [(A, B), (B, A), (A, A)], ids=["a-b", "b-a", "a-a"])
def test_duplicate_api_key_headers_are_400_on_every_path(
    keyed: ServerProcess, keys: tuple[str, str]
) -> None:
    sid = _session(keyed)
    twice = [("X-API-Key", keys[0]), ("X-API-Key", keys[1])]
    infer = {"inputs": [{"name": "x", "shape": [1, 1, 1], "datatype": "FP32", "data": [1.0]}]}
    with httpx.Client(base_url=keyed.url) as client:
        step = client.post(f"/v1/sessions/{sid}/steps", json={"inputs": [[1.0]]}, headers=twice)
        got = client.get(f"/v1/sessions/{sid}", headers=twice)
        v2 = client.post("/v2/models/diffed/infer", json=infer, headers=twice)
    for r in (step, got):
        assert r.status_code == 400, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert "one X-API-Key" in r.json()["detail"]
    assert v2.status_code == 400, v2.text
    assert "one X-API-Key" in v2.json()["error"]
    assert _step_index(keyed, sid) == 0  # the refused step changed nothing


def test_a_single_key_still_works_on_the_same_paths(keyed: ServerProcess) -> None:
    sid = _session(keyed)
    one = {"X-API-Key": A}
    step = httpx.post(f"{keyed.url}/v1/sessions/{sid}/steps", json={"inputs": [[1.0]]}, headers=one)
    assert step.status_code == 200, step.text
    assert _step_index(keyed, sid) == 1
