"""Connections cannot hold the server: stalled heads and bodies, huge heads, idle WebSockets,
too many connections. Timeouts are set small; the bounds below only detect a hang."""

from __future__ import annotations

import json
import select
import socket
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from scripts.launch import ServerProcess
from tests.e2e.conftest import StartServer

HANG = 20.0  # seconds after which a test gives up waiting for an answer


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server(
        SEQSERVE_LIMITS__BODY_TIMEOUT_S="0.5",
        SEQSERVE_LIMITS__HEAD_TIMEOUT_S="0.5",
        SEQSERVE_LIMITS__MAX_HEAD_BYTES="4096",
        SEQSERVE_LIMITS__WS_IDLE_TIMEOUT_S="0.5",
    )


def _until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(HANG)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _one_reply(sock: socket.socket) -> bytes:
    """One whole answer on a kept-alive connection (its head and Content-Length of body)."""

    def more(reply: bytes) -> bytes:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection after {reply!r}"
        return reply + chunk

    reply = b""
    while b"\r\n\r\n" not in reply:
        reply = more(reply)
    head = reply.partition(b"\r\n\r\n")[0].lower()
    length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
    while len(reply.partition(b"\r\n\r\n")[2]) < length:
        reply = more(reply)
    return reply


def _status_and_body(reply: bytes) -> tuple[int, bytes]:
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower(), head
    return int(head.split()[1]), body


def _session(server: ServerProcess) -> str:
    return str(httpx.post(f"{server.url}/v1/sessions", json={"model": "diffed"}).json()["id"])


@pytest.mark.parametrize("kind", ["step", "predict", "v2"])
def test_a_stalled_body_gets_408_and_the_connection_closes(
    server: ServerProcess, kind: str
) -> None:
    path = {
        "step": f"/v1/sessions/{_session(server)}/steps",
        "predict": "/v1/models/diffed/predict",
        "v2": "/v2/models/diffed/infer",
    }[kind]
    partial = b'{"inputs": '
    head = (
        f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"Content-Length: 100\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(head + partial)  # 89 bytes short of its Content-Length
        status, body = _status_and_body(_until_closed(sock))
    assert status == 408
    message = json.loads(body)
    assert "0.5 s" in (message["error"] if kind == "v2" else message["detail"])
    # the server is still fine
    assert httpx.get(f"{server.url}/healthz").status_code == 200


@pytest.mark.parametrize("start", [b"", b"GET /healthz HTTP/1.1\r\nHost: t\r\n"])
def test_a_stalled_head_gets_408_and_the_connection_closes(
    server: ServerProcess, start: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(start)
        status, body = _status_and_body(_until_closed(sock))
    assert status == 408
    assert "0.5 s" in json.loads(body)["detail"]


def test_idle_keep_alive_time_is_not_counted_against_the_next_head(
    server: ServerProcess,
) -> None:
    # the head deadline starts at a request's first byte: a connection idle for longer than
    # the head timeout between requests (sweeps run meanwhile) is still served
    request = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(HANG)
        for _ in range(2):
            sock.sendall(request)
            assert _one_reply(sock).startswith(b"HTTP/1.1 200 ")
            time.sleep(1.5)  # the client idles: three times the 0.5 s head timeout


def test_an_idle_keep_alive_connection_is_closed(start_server: StartServer) -> None:
    server = start_server(SEQSERVE_LIMITS__KEEP_ALIVE_S="0.5")
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(HANG)
        for _ in range(3):  # requests in a row keep it open
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            assert _one_reply(sock).startswith(b"HTTP/1.1 200 ")
        assert sock.recv(65536) == b""  # then the server closes it (within HANG)


def test_a_huge_head_gets_431_and_the_connection_closes(server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: ")
        for _ in range(1024):  # up to 1 MiB of one header, until the server answers
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            sock.sendall(b"a" * 1024)
        else:
            sock.sendall(b"\r\n\r\n")
        status, body = _status_and_body(_until_closed(sock))
    assert status == 431, body
    assert "4096 bytes" in json.loads(body)["detail"]


def test_an_idle_websocket_is_closed(server: ServerProcess) -> None:
    sid = _session(server)
    url = server.url.replace("http", "ws") + f"/v1/sessions/{sid}/stream"
    with connect(url, open_timeout=HANG) as ws:
        ws.send(json.dumps({"inputs": [[315.0]], "step": 0}))
        assert json.loads(ws.recv(timeout=HANG))["step"] == 1
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=HANG)  # then nothing more is sent
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1001


def test_connections_beyond_the_cap_are_refused_cleanly(start_server: StartServer) -> None:
    server = start_server(
        SEQSERVE_LIMITS__MAX_CONNECTIONS="4", SEQSERVE_LIMITS__HEAD_TIMEOUT_S="300"
    )
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(2)]
    try:
        assert httpx.get(f"{server.url}/healthz").status_code == 200  # 3 of 4
        idle += [socket.create_connection(("127.0.0.1", server.port)) for _ in range(2)]
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            status, _ = _status_and_body(_until_closed(sock))
        assert status == 503
    finally:
        for sock in idle:
            sock.close()
    for _ in range(1000):  # the server notices the closed connections as it reads them
        if httpx.get(f"{server.url}/healthz").status_code == 200:
            break
    assert httpx.get(f"{server.url}/healthz").status_code == 200
