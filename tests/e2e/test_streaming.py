"""WebSocket steps and SSE forecasts against a real server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from scripts.launch import ServerProcess
from tests.e2e.conftest import StartServer
from tests.service.expected import Expected

TOL = 1e-5


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server(SEQSERVE_SECURITY__API_KEYS='["k1", "k2"]')


def _session(server: ServerProcess, key: str = "k1") -> str:
    r = httpx.post(
        f"{server.url}/v1/sessions", json={"model": "diffed"}, headers={"X-API-Key": key}
    )
    return str(r.json()["id"])


def _ws(server: ServerProcess, sid: str, key: str = "k1"):  # type: ignore[no-untyped-def]
    url = server.url.replace("http", "ws") + f"/v1/sessions/{sid}/stream"
    return connect(url, additional_headers={"X-API-Key": key}, open_timeout=10)


def test_websocket_steps_match_reference_in_order(server: ServerProcess, repo: Path) -> None:
    raw = 315 + np.cumsum(np.random.default_rng(2).normal(0, 0.4, (30, 1)), axis=0)
    sid = _session(server)
    chunks = [(0, 1), (1, 5), (5, 6), (6, 30)]
    with _ws(server, sid) as ws:
        for start, stop in chunks:  # pipelined: all sent before any reply is read
            ws.send(json.dumps({"inputs": raw[start:stop].tolist(), "step": start, "id": start}))
        replies = [json.loads(ws.recv(timeout=10)) for _ in chunks]
    assert [r["id"] for r in replies] == [c[0] for c in chunks]
    assert [r["step"] for r in replies] == [c[1] for c in chunks]
    got = np.concatenate([r["outputs"] for r in replies])
    np.testing.assert_allclose(got, Expected(repo / "diffed" / "2").run(raw)[0], atol=TOL)


def test_bad_messages_get_errors_and_the_connection_stays(server: ServerProcess) -> None:
    sid = _session(server)
    with _ws(server, sid) as ws:
        for bad, status in (
            ("{not json", 400),
            (json.dumps({"inputs": [[1.0, 2.0]]}), 422),
            (json.dumps({"inputs": [["x"]]}), 422),
            (json.dumps([1, 2]), 422),
            (json.dumps({"inputs": [[1.0]], "step": 9}), 409),
        ):
            ws.send(bad)
            reply = json.loads(ws.recv(timeout=10))
            assert reply["error"]["status"] == status, (bad, reply)
        ws.send(json.dumps({"inputs": [[315.0]], "step": 0}))
        assert json.loads(ws.recv(timeout=10))["step"] == 1
        ws.send(b"\x00binary")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1003


def test_unknown_session_and_wrong_key_close_with_codes(server: ServerProcess) -> None:
    sid = _session(server, "k1")
    for target, key, code in ((sid, "k2", 4404), ("nope", "k1", 4404), (sid, "bad", 4401)):
        with _ws(server, target, key) as ws:
            error = json.loads(ws.recv(timeout=10))["error"]
            assert error["status"] in (401, 404)
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == code


def test_disconnect_mid_stream_leaves_the_session_consistent(
    server: ServerProcess, repo: Path
) -> None:
    raw = 315 + np.cumsum(np.random.default_rng(4).normal(0, 0.4, (45, 1)), axis=0)
    want = Expected(repo / "diffed" / "2").run(raw)[0]
    sid = _session(server)
    url, headers = f"{server.url}/v1/sessions/{sid}/steps", {"X-API-Key": "k1"}
    with _ws(server, sid) as ws:
        ws.send(json.dumps({"inputs": raw[:1].tolist(), "step": 0}))
        assert json.loads(ws.recv(timeout=10))["step"] == 1  # at least one step is applied
        for k in range(1, 40):  # fire the rest, read nothing, drop the connection
            ws.send(json.dumps({"inputs": raw[k : k + 1].tolist(), "step": k}))
    # the client resumes over HTTP from wherever the server got to (frames it had buffered
    # may still be applying meanwhile: each carries its index, so a 409 says where it is now)
    at = httpx.get(f"{server.url}/v1/sessions/{sid}", headers=headers).json()["step"]
    for _ in range(41):
        rest = httpx.post(url, json={"inputs": raw[at:].tolist(), "step": at}, headers=headers)
        if rest.status_code != 409:
            break
        at = rest.json()["current_step"]
    assert rest.status_code == 200, rest.text
    assert 1 <= at <= 40
    assert rest.json()["replayed"] is False
    assert rest.json()["step"] == 45
    # every step applied exactly once, in order: the outputs are the reference's from `at`
    np.testing.assert_allclose(rest.json()["outputs"], want[at:], atol=TOL)
    again = httpx.post(url, json={"inputs": raw[at:].tolist(), "step": at}, headers=headers)
    assert again.json()["replayed"] is True
    assert again.json()["outputs"] == rest.json()["outputs"]
    assert httpx.get(f"{server.url}/v1/sessions/{sid}", headers=headers).json()["step"] == 45


def test_a_frame_over_the_size_limit_closes_with_1009(server: ServerProcess) -> None:
    sid = _session(server)
    limit = 4 << 20  # SEQSERVE_LIMITS__MAX_BODY_BYTES, the default, is uvicorn's ws_max_size
    with _ws(server, sid) as ws:
        ws.send(json.dumps({"inputs": [[315.0]], "step": 0}))
        assert json.loads(ws.recv(timeout=10))["step"] == 1
        ws.send('{"inputs": [[315.0]], "pad": "' + "x" * limit + '"}')
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009
    # the session is untouched and a new connection carries on
    with _ws(server, sid) as ws:
        ws.send(json.dumps({"inputs": [[316.0]], "step": 1}))
        assert json.loads(ws.recv(timeout=10))["step"] == 2


def _sse_events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        name = re.search(r"^event: (.+)$", block, re.MULTILINE)
        data = re.search(r"^data: (.+)$", block, re.MULTILINE)
        assert name, block
        assert data, block
        events.append((name.group(1), json.loads(data.group(1))))
    return events


def test_sse_forecast_streams_one_event_per_step(server: ServerProcess, repo: Path) -> None:
    raw = 315 + np.cumsum(np.random.default_rng(6).normal(0, 0.4, (20, 1)), axis=0)
    sid = _session(server)
    headers = {"X-API-Key": "k1"}
    httpx.post(
        f"{server.url}/v1/sessions/{sid}/steps", json={"inputs": raw.tolist()}, headers=headers
    )
    r = httpx.get(
        f"{server.url}/v1/sessions/{sid}/forecast/stream", params={"horizon": 6}, headers=headers
    )
    assert r.headers["content-type"].startswith("text/event-stream")
    events = _sse_events(r.text)
    assert [e[0] for e in events] == ["forecast"] * 6 + ["end"]
    got = np.array([e[1]["forecast"] for e in events[:-1]])
    np.testing.assert_allclose(got, Expected(repo / "diffed" / "2").forecast(raw, 6), atol=TOL)
    bad = httpx.get(
        f"{server.url}/v1/sessions/{sid}/forecast/stream", params={"horizon": 0}, headers=headers
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"


def _ort_calls(server: ServerProcess) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    return sum(map(float, re.findall(r"^seqserve_ort_run_seconds_count{[^}]*} (\S+)$", text, re.M)))


def test_sse_stops_computing_when_the_client_leaves(server: ServerProcess) -> None:
    sid = _session(server)
    headers = {"X-API-Key": "k1"}
    httpx.post(f"{server.url}/v1/sessions/{sid}/steps", json={"inputs": [[315.0]]}, headers=headers)
    before = _ort_calls(server)
    horizon = 10_000
    url = f"{server.url}/v1/sessions/{sid}/forecast/stream"
    with httpx.stream("GET", url, params={"horizon": horizon}, headers=headers) as r:
        seen = 0
        for line in r.iter_lines():
            seen += line.startswith("event: forecast")
            if seen == 5:
                break
    # poll until the server has noticed: the count stops growing far short of the horizon
    last, stable = -1.0, 0
    for _ in range(200):
        now = _ort_calls(server)
        stable = stable + 1 if now == last else 0
        last = now
        if stable >= 5:
            break
    assert stable >= 5
    assert last - before < horizon / 2
