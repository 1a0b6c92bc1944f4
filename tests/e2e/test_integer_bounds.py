"""Integers the API could not echo are refused at the schema, before anything is applied
(a real server: a failed reply would drop the WebSocket or answer 500)."""

from __future__ import annotations

import json

import httpx
import pytest
from websockets.sync.client import connect

from scripts.launch import ServerProcess
from tests.e2e.conftest import StartServer


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server()


def _step_of(server: ServerProcess, sid: str) -> int:
    return int(httpx.get(f"{server.url}/v1/sessions/{sid}").json()["step"])


@pytest.mark.parametrize(
    "message",
    [
        {"inputs": [[315.0]], "id": 2**64},
        {"inputs": [[315.0]], "id": 2**53},
        {"inputs": [[315.0]], "step": 2**64},
        {"inputs": [[315.0]], "step": 2**53},
    ],
)
def test_websocket_integers_past_json_safety_get_an_error_frame_and_apply_nothing(
    server: ServerProcess, message: dict[str, int]
) -> None:
    sid = httpx.post(f"{server.url}/v1/sessions", json={"model": "diffed"}).json()["id"]
    url = server.url.replace("http", "ws") + f"/v1/sessions/{sid}/stream"
    with connect(url, open_timeout=10) as ws:
        ws.send(json.dumps(message))
        reply = json.loads(ws.recv(timeout=10))
        assert reply["error"]["status"] == 422, reply
        assert _step_of(server, sid) == 0
        # the connection stays open and serves the next message
        ws.send(json.dumps({"inputs": [[315.0]], "step": 0, "id": 2**53 - 1}))
        reply = json.loads(ws.recv(timeout=10))
        assert (reply["step"], reply["id"]) == (1, 2**53 - 1)
    assert httpx.get(f"{server.url}/v1/sessions").status_code == 200


@pytest.mark.parametrize("value", [2**53, 2**64])
def test_http_step_index_past_json_safety_is_422(server: ServerProcess, value: int) -> None:
    sid = httpx.post(f"{server.url}/v1/sessions", json={"model": "diffed"}).json()["id"]
    r = httpx.post(
        f"{server.url}/v1/sessions/{sid}/steps", json={"inputs": [[315.0]], "step": value}
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert _step_of(server, sid) == 0
    assert httpx.get(f"{server.url}/v1/sessions").status_code == 200


def test_v2_header_length_of_a_non_ascii_digit_is_400(server: ServerProcess) -> None:
    body = b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1, 1], "data": [0.5]}]}'
    # b"\xb2" arrives as '²' (headers are latin-1), which str.isdigit passes and int refuses
    headers = {"Inference-Header-Content-Length": b"\xb2"}
    r = httpx.post(f"{server.url}/v2/models/diffed/infer", content=body, headers=headers)
    assert r.status_code == 400, r.text
    assert "inference header size" in r.json()["error"]
