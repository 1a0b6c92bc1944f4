"""Two replicas on a 3-master cluster: sessions spread over every master, a master SIGKILLed
mid-stream, and every stream (retried with its step index) equal to a stateless predict."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from scripts.launch import RedisClusterNodes, ServerProcess
from tests.e2e.cluster.conftest import cluster_env
from tests.e2e.conftest import StartServer
from tests.service.conftest import co2_like

pytestmark = pytest.mark.e2e
STREAMS, LENGTH, CHUNK = 48, 12, 3
TOL = 1e-5


def _session_keys_per_master(cluster: RedisClusterNodes, prefix: str) -> dict[int, int]:
    counts = {}
    for port in cluster.master_of_slot_ports():
        with cluster.client(cluster.ports.index(port)) as admin:
            counts[port] = sum(1 for _ in admin.scan_iter(match=f"{prefix}:*:s:*", count=1000))
    return counts


def _step_until_done(
    http: httpx.Client, replicas: list[ServerProcess], sid: str, chunk: list[list[float]],
    at: int, k: int, seen: dict[int, int], deadline: float,
) -> list[list[float]]:  # fmt: skip
    """One chunk, retried with its index on the other replica until it is answered; 503s
    (and refused connections) are what a failover may give, never a 500 or a 409."""
    tries = 0
    with httpx.Client(timeout=30) as http:
        while True:
            server = replicas[(k + tries) % 2]
            try:
                r = http.post(
                    f"{server.url}/v1/sessions/{sid}/steps", json={"inputs": chunk, "step": at}
                )
            except httpx.TransportError:
                seen[-1] = seen.get(-1, 0) + 1
            else:
                seen[r.status_code] = seen.get(r.status_code, 0) + 1
                if r.status_code == 200:
                    body = r.json()
                    assert body["step"] == at + len(chunk), body
                    return list(body["outputs"])
                assert r.status_code == 503, r.text
                assert r.headers.get("retry-after"), r.headers
            assert time.monotonic() < deadline, f"session {sid} stuck at step {at}: {seen}"
            tries += 1
            time.sleep(0.1)


def test_a_master_killed_mid_stream_loses_no_acknowledged_step(
    cluster: RedisClusterNodes, start_server: StartServer, repo: Path
) -> None:
    env = cluster_env(cluster, "fo", SEQSERVE_REDIS_WAIT_REPLICAS="1",
                      SEQSERVE_REDIS_WAIT_TIMEOUT_MS="1000")  # fmt: skip
    replicas = [start_server(**env), start_server(**env)]
    raw = [co2_like(LENGTH, seed=100 + s) for s in range(STREAMS)]
    ids = []
    for s in range(STREAMS):  # created alternately on both replicas
        r = httpx.post(f"{replicas[s % 2].url}/v1/sessions", json={"model": "diffed"})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    spread = _session_keys_per_master(cluster, "fo")
    assert len(spread) == 3, spread
    assert all(n > 0 for n in spread.values()), spread  # every master holds sessions

    outputs: list[list[list[float]]] = [[] for _ in range(STREAMS)]
    seen: dict[int, int] = {}
    progress = threading.Semaphore(0)
    deadline = time.monotonic() + 75

    def stream(s: int) -> None:
        with httpx.Client(timeout=30) as http:
            for k, at in enumerate(range(0, LENGTH, CHUNK)):
                chunk = raw[s][at : at + CHUNK].tolist()
                outputs[s] += _step_until_done(
                    http, replicas, ids[s], chunk, at, s + k, seen, deadline
                )
                progress.release()

    with ThreadPoolExecutor(16) as pool:
        runs = [pool.submit(stream, s) for s in range(STREAMS)]
        for _ in range(STREAMS * LENGTH // CHUNK // 3):  # a third of all steps answered
            assert progress.acquire(timeout=60), [r.exception() for r in runs if r.done()]
        victim = next(iter(cluster.master_of_slot_ports()))
        cluster.kill(victim)  # mid-stream: SIGKILL, as a crash
        # the other masters still take writes: every replica stays ready (not all pulled
        # from the load balancer while one master fails over)
        for server in replicas:
            assert httpx.get(f"{server.url}/readyz", timeout=30).status_code == 200
        # the killed master's replica takes over; the old master, restarted, becomes its
        # replica (with WAIT 1 the new master acknowledges nothing until it has one)
        while victim in cluster.master_of_slot_ports():
            assert time.monotonic() < deadline, "no failover"
            time.sleep(0.1)
        cluster.restart(victim)
        for run in runs:
            run.result()
    predicted = httpx.post(
        f"{replicas[0].url}/v1/models/diffed/predict",
        json={"inputs": [r.tolist() for r in raw]},
        timeout=60,
    )
    assert predicted.status_code == 200, predicted.text
    np.testing.assert_allclose(outputs, predicted.json()["outputs"], atol=TOL)
    assert 500 not in seen, seen
    print(f"answers during the failover: {seen}")
    for server in replicas:  # every session at its last step, seen from either replica
        for sid in ids[::7]:
            assert httpx.get(f"{server.url}/v1/sessions/{sid}").json()["step"] == LENGTH
