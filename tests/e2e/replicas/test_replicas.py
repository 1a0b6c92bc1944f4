"""Replicas sharing sessions in a real Redis: any replica serves any request, duplicates
sent to different replicas apply once, and a replica killed mid-stream loses no step."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from scripts.launch import RedisServer, ServerProcess
from tests.e2e.replicas.conftest import StartReplica
from tests.service.conftest import co2_like
from tests.service.expected import Expected

pytestmark = pytest.mark.e2e
TOL = 1e-5


def create(server: ServerProcess) -> str:
    r = httpx.post(f"{server.url}/v1/sessions", json={"model": "diffed"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def step(server: ServerProcess, sid: str, chunk: np.ndarray, at: int) -> dict[str, Any]:
    body = {"inputs": chunk.tolist(), "step": at}
    r = httpx.post(f"{server.url}/v1/sessions/{sid}/steps", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json())


def steps_total(servers: list[ServerProcess]) -> float:
    total = 0.0
    for server in servers:
        for line in httpx.get(f"{server.url}/metrics").text.splitlines():
            if line.startswith('seqserve_steps_total{model="diffed"}'):
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_any_replica_serves_any_request(replicas: list[ServerProcess], repo: Path) -> None:
    exp = Expected(repo / "diffed" / "2")
    raw, more = co2_like(40, seed=1), co2_like(6, seed=2) + 5
    sizes = [3, 1, 5, 2, 7, 4, 1, 6, 3, 8]
    sid = create(replicas[0])
    outputs, at = [], 0
    for k, size in enumerate(sizes):  # round robin: each chunk on the next replica
        outputs += step(replicas[k % 3], sid, raw[at : at + size], at)["outputs"]
        at += size
    np.testing.assert_allclose(outputs, exp.run(raw)[0], atol=TOL)
    for server in replicas:
        assert httpx.get(f"{server.url}/v1/sessions/{sid}").json()["step"] == 40
    forecast = httpx.post(f"{replicas[1].url}/v1/sessions/{sid}/forecast", json={"horizon": 4})
    np.testing.assert_allclose(forecast.json()["forecast"], exp.forecast(raw, 4), atol=TOL)
    # fork on C; the child continues on A and the parent on B, from the same state
    child = httpx.post(f"{replicas[2].url}/v1/sessions/{sid}/fork").json()["id"]
    want = exp.run(np.concatenate([raw, more]))[0][40:]
    for server, session in ((replicas[0], child), (replicas[1], sid)):
        np.testing.assert_allclose(step(server, session, more, 40)["outputs"], want, atol=TOL)
    # created on A, deleted on A: gone everywhere
    assert httpx.delete(f"{replicas[0].url}/v1/sessions/{sid}").status_code == 204
    for server in replicas:
        assert httpx.get(f"{server.url}/v1/sessions/{sid}").status_code == 404
        listed = httpx.get(f"{server.url}/v1/sessions").json()["sessions"]
        assert child in {s["id"] for s in listed}
        assert sid not in {s["id"] for s in listed}


def test_duplicates_sent_to_different_replicas_apply_once(
    replicas: list[ServerProcess], repo: Path
) -> None:
    exp = Expected(repo / "diffed" / "2")
    raw = co2_like(24, seed=3)
    sid = create(replicas[0])
    before = steps_total(replicas)

    async def race(body: dict[str, Any]) -> list[httpx.Response]:
        url = f"/v1/sessions/{sid}/steps"
        async with httpx.AsyncClient(timeout=30) as http:
            calls = [http.post(s.url + url, json=body) for s in replicas for _ in range(2)]
            return list(await asyncio.gather(*calls))

    for k in range(8):  # each round: the same request six times, two per replica, at once
        responses = asyncio.run(race({"inputs": raw[3 * k : 3 * k + 3].tolist(), "step": 3 * k}))
        assert [r.status_code for r in responses] == [200] * 6, [r.text for r in responses]
        replies = [r.json() for r in responses]
        assert [reply["replayed"] for reply in replies].count(False) == 1  # one commit
        for reply in replies:
            assert reply["step"] == 3 * k + 3
            np.testing.assert_allclose(reply["outputs"], exp.run(raw)[0][3 * k : 3 * k + 3])
    assert steps_total(replicas) - before == 24  # applied once, whichever replica applied it
    # the same index with different inputs, at once on three replicas: one wins, two get 409
    bodies = [{"inputs": [[400.0 + i]], "step": 24} for i in range(3)]

    async def conflict() -> list[httpx.Response]:
        url = f"/v1/sessions/{sid}/steps"
        async with httpx.AsyncClient(timeout=30) as http:
            calls = [http.post(s.url + url, json=b) for s, b in zip(replicas, bodies, strict=True)]
            return list(await asyncio.gather(*calls))

    codes = sorted(r.status_code for r in asyncio.run(conflict()))
    assert codes == [200, 409, 409]
    assert httpx.get(f"{replicas[2].url}/v1/sessions/{sid}").json()["step"] == 25


def _ort_calls(server: ServerProcess) -> float:
    lines = httpx.get(f"{server.url}/metrics").text.splitlines()
    calls = [line for line in lines if line.startswith("seqserve_ort_run_seconds_count")]
    return sum(float(line.rsplit(" ", 1)[1]) for line in calls)


def _send_raw(server: ServerProcess, path: str, body: dict[str, Any]) -> socket.socket:
    """Deliver a whole HTTP request to the server's socket without waiting for an answer."""
    payload = orjson.dumps(body)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(head.encode() + payload)
    return sock


@pytest.mark.parametrize("when", ["after-commit", "mid-step"])
def test_killed_replica_loses_no_applied_step(
    replicas: list[ServerProcess],
    shared_redis: RedisServer,
    start_replica: StartReplica,
    repo: Path,
    when: str,
) -> None:
    exp = Expected(repo / "diffed" / "2")
    raw = co2_like(530, seed=4)
    victim = start_replica()
    sid = create(victim)
    outputs: list[list[float]] = []
    for k in range(4):  # the stream alternates between the victim and replica A
        outputs += step([victim, replicas[0]][k % 2], sid, raw[3 * k : 3 * k + 3], 3 * k)["outputs"]
    big = {"inputs": raw[12:512].tolist(), "step": 12}  # long enough to be caught mid-way
    if when == "after-commit":
        httpx.post(f"{victim.url}/v1/sessions/{sid}/steps", json=big)  # the answer is lost
        victim.stop(signal.SIGKILL)  # a crash
    else:  # hold Redis writes, so the victim dies after computing, before committing
        with shared_redis.client() as admin:
            admin.client_pause(10_000, all=False)
            try:
                ort_calls = _ort_calls(victim)
                sock = _send_raw(victim, f"/v1/sessions/{sid}/steps", big)
                deadline = time.monotonic() + 10
                while _ort_calls(victim) == ort_calls:  # poll until the step has been computed
                    assert time.monotonic() < deadline, "the victim never ran the step"
                victim.stop(signal.SIGKILL)  # a crash
                sock.close()
            finally:
                admin.client_unpause()
    # the client retries the same request, with its step index, on another replica
    retry = step(replicas[1], sid, raw[12:512], 12)
    # after a commit the retry gets the stored answer; killed mid-step, the victim's write was
    # still held by the paused Redis and died with its connection, so the retry applies it
    assert retry["replayed"] is (when == "after-commit")
    assert retry["step"] == 512
    outputs += retry["outputs"]
    outputs += step(replicas[2], sid, raw[512:], 512)["outputs"]
    np.testing.assert_allclose(outputs, exp.run(raw)[0], atol=TOL)
    assert httpx.get(f"{replicas[0].url}/v1/sessions/{sid}").json()["step"] == 530
