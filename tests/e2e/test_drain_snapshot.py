"""SIGTERM on a real memory-store server: it drains (both readiness probes and new sessions
503, steps still served), stops listening after the drain delay or at a second signal, lets
in-flight requests finish, snapshots its sessions, and the next start restores them (stored
replies included); a corrupt snapshot stops the start with exit status 3.

No assertion races a clock: the delay is either far longer than the test (a second signal
ends it) or only awaited, never raced."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from scripts.launch import ServerProcess
from tests.e2e.conftest import StartServer
from tests.e2e.replicas.test_replicas import create, step
from tests.service.conftest import co2_like
from tests.service.expected import Expected

pytestmark = pytest.mark.e2e
# uvicorn re-raises the signal it caught once shutdown is done, so a clean exit after SIGTERM
# reads as "killed by SIGTERM" (older uvicorn versions exited 0)
EXITED_ON_SIGTERM = (0, -signal.SIGTERM)
HORIZON = 10_000  # the largest forecast: an SSE stream that takes a while to compute and read


def _poll(what: str, condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


def _listening(server: ServerProcess) -> bool:
    try:
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
    except OSError:
        return False
    return True


def _sse_events(lines: Iterator[str]) -> list[dict[str, object]]:
    return [json.loads(line[len("data: ") :]) for line in lines if line.startswith("data: ")]


def _drained(server: ServerProcess) -> bool:
    return httpx.get(f"{server.url}/readyz").status_code == 503


def test_sigterm_drains_a_second_signal_ends_the_delay_and_the_snapshot_restores(
    start_server: StartServer, repo: Path, tmp_path: Path
) -> None:
    exp = Expected(repo / "diffed" / "2")
    raw = co2_like(24, seed=8)
    snap = tmp_path / "sessions.snap"
    env = {"SEQSERVE_SNAPSHOT_PATH": str(snap), "SEQSERVE_DRAIN_DELAY_S": "3600"}
    server = start_server(**env)
    assert server.proc is not None
    sid = create(server)
    outputs = step(server, sid, raw[:10], 0)["outputs"]
    url = f"{server.url}/v1/sessions/{sid}/forecast/stream"
    with httpx.stream("GET", url, params={"horizon": HORIZON}, timeout=60) as sse:
        lines = sse.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))  # in flight now

        server.proc.send_signal(signal.SIGTERM)
        _poll("readiness turns 503", lambda: _drained(server))
        v2_ready = httpx.get(f"{server.url}/v2/health/ready")
        assert v2_ready.status_code == 503
        assert "error" in v2_ready.json()
        assert httpx.get(f"{server.url}/healthz").status_code == 200  # alive, just draining
        refused = httpx.post(f"{server.url}/v1/sessions", json={"model": "diffed"})
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) > 0
        assert "another replica" in refused.json()["detail"]
        last = step(server, sid, raw[10:15], 10)  # live streams are still served
        outputs += last["outputs"]

        server.proc.send_signal(signal.SIGTERM)  # skips the rest of the hour-long delay
        _poll("the server stops listening", lambda: not _listening(server))
        events = [json.loads(first[len("data: ") :]), *_sse_events(lines)]
    assert len(events) == HORIZON + 1  # the request in flight finished: every step, then end
    assert events[-1] == {"horizon": HORIZON, "step": 10}
    got = [e["forecast"] for e in events[:5]]
    np.testing.assert_allclose(got, exp.forecast(raw[:10], 5), atol=1e-5)
    assert server.proc.wait(30) in EXITED_ON_SIGTERM
    assert snap.is_file()

    again = start_server(**env)
    assert httpx.get(f"{again.url}/v1/sessions/{sid}").json()["step"] == 15
    retry = step(again, sid, raw[10:15], 10)  # the last step's retry, across the restart
    assert retry["replayed"] is True
    assert retry["outputs"] == last["outputs"]
    assert retry["step"] == 15
    outputs += step(again, sid, raw[15:], 15)["outputs"]
    np.testing.assert_allclose(outputs, exp.run(raw)[0], atol=1e-5)
    assert not snap.exists()
    assert snap.with_name("sessions.snap.restored").is_file()


def test_after_the_drain_delay_in_flight_requests_finish(start_server: StartServer) -> None:
    server = start_server(SEQSERVE_DRAIN_DELAY_S="0.2")
    assert server.proc is not None
    sid = create(server)
    step(server, sid, co2_like(3), 0)
    url = f"{server.url}/v1/sessions/{sid}/forecast/stream"
    with httpx.stream("GET", url, params={"horizon": HORIZON}, timeout=60) as sse:
        lines = sse.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        server.proc.send_signal(signal.SIGTERM)
        # once the delay has run out on its own the server stops listening; the client has
        # not read on meanwhile, and its stream still arrives whole
        _poll("the server stops listening", lambda: not _listening(server))
        events = [json.loads(first[len("data: ") :]), *_sse_events(lines)]
    assert len(events) == HORIZON + 1
    assert events[-1] == {"horizon": HORIZON, "step": 3}
    assert server.proc.wait(30) in EXITED_ON_SIGTERM


def test_a_corrupt_snapshot_stops_the_start_with_status_3_and_is_kept(
    repo: Path, tmp_path: Path
) -> None:
    snap = tmp_path / "sessions.snap"
    corrupt = b"SEQSERVE-SNAPSHOT/1\n" + b"\0" * 64
    snap.write_bytes(corrupt)
    server = ServerProcess.seqserve(repo, tmp_path, SEQSERVE_SNAPSHOT_PATH=str(snap))
    try:
        with pytest.raises(RuntimeError, match="refusing to start.*checksum mismatch"):
            server.start()
        assert server.proc is not None
        assert server.proc.wait(30) == 3  # docs/scaling.md: "exit status 3"
    finally:
        server.stop()
    assert snap.read_bytes() == corrupt
