"""The WebSocket adapter in-process: a session that expires under an open stream closes it
with 4410 (the wall clock is a FakeClock, so expiry needs no waiting)."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from tests.service.clock import FakeClock
from tests.service.conftest import MakeClient, new_session


def _assert_closed(ws: WebSocketTestSession, code: int) -> None:
    """The server closed with `code`; had it kept the stream open, the next message would be
    answered (with another error frame) instead of the close."""
    ws.send_text(json.dumps({"inputs": [[317.0]]}))
    with pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_text()
    assert closed.value.code == code


def test_a_session_expiring_under_an_open_stream_closes_it_with_4410(
    make_client: MakeClient, clock: FakeClock
) -> None:
    client = make_client()
    sid = new_session(client, idle_ttl_s=30)["id"]
    with client.websocket_connect(f"/v1/sessions/{sid}/stream") as ws:
        ws.send_text(json.dumps({"inputs": [[315.0]], "step": 0, "id": "a"}))
        assert ws.receive_json()["step"] == 1
        clock.advance(31)
        ws.send_text(json.dumps({"inputs": [[316.0]], "step": 1, "id": "b"}))
        reply = ws.receive_json()
        assert reply["id"] == "b"
        assert reply["error"]["status"] == 410
        assert reply["error"]["reason"] == "expired"
        _assert_closed(ws, 4410)
    assert client.get(f"/v1/sessions/{sid}").status_code == 410


def test_a_session_deleted_under_an_open_stream_closes_it_with_4404(
    make_client: MakeClient,
) -> None:
    client = make_client()
    sid = new_session(client)["id"]
    with client.websocket_connect(f"/v1/sessions/{sid}/stream") as ws:
        ws.send_text(json.dumps({"inputs": [[315.0]]}))
        assert ws.receive_json()["step"] == 1
        assert client.delete(f"/v1/sessions/{sid}").status_code == 204
        ws.send_text(json.dumps({"inputs": [[316.0]]}))
        status = ws.receive_json()["error"]["status"]
        assert status in (404, 410)  # 410 where the store keeps a tombstone of the delete
        _assert_closed(ws, 4000 + status)
