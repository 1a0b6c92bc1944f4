"""The client across two Redis-backed replicas, each behind a lossy proxy, one killed midway:
the session's 300 steps still equal one stateless predict, applied exactly once."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator

import httpx
import numpy as np
import pytest

from scripts.launch import ServerProcess
from seqserve.client import AsyncClient, Client
from tests.e2e.client.fault_proxy import FaultProxy
from tests.e2e.client.test_exactly_once import (
    MODEL,
    STEPS,
    assert_whole,
    chunks,
    expected,
    lossy_client,
)
from tests.e2e.replicas.conftest import StartReplica

KILL_AT = STEPS // 2


@pytest.fixture
def pair(start_replica: StartReplica) -> Iterator[tuple[list[ServerProcess], list[FaultProxy]]]:
    servers = [start_replica(), start_replica()]
    proxies = [FaultProxy(s.port, seed=20 + k).start() for k, s in enumerate(servers)]
    yield servers, proxies
    for proxy in proxies:
        proxy.stop()


def test_steps_survive_a_killed_replica(
    pair: tuple[list[ServerProcess], list[FaultProxy]],
) -> None:
    (doomed, survivor), proxies = pair
    parts = chunks(4)
    outputs = []
    with lossy_client(*(p.url for p in proxies)) as client:
        session = client.create_session(MODEL)
        for part in parts:
            if session.current_step >= KILL_AT and doomed.proc and doomed.proc.poll() is None:
                doomed.stop(signal.SIGKILL)
            outputs.append(session.step(part))
    assert doomed.proc is not None
    assert doomed.proc.returncode == -signal.SIGKILL
    assert httpx.get(f"{survivor.url}/v1/sessions/{session.id}").json()["step"] == STEPS
    assert_whole(outputs, expected(survivor.url, parts), parts)


def test_async_stream_survives_a_killed_replica(
    pair: tuple[list[ServerProcess], list[FaultProxy]],
) -> None:
    (doomed, survivor), proxies = pair
    parts = chunks(5)

    async def feed() -> AsyncIterator[np.ndarray]:
        for part in parts:
            await asyncio.sleep(0)
            yield part

    async def run() -> tuple[str, list[np.ndarray]]:
        outputs = []
        urls = [p.url for p in proxies]
        async with AsyncClient(urls, keepalive=False, retries=40, deadline_s=120.0) as client:
            session = await client.create_session(MODEL)
            async for out in session.stream(feed(), max_steps=8, window=8):
                outputs.append(out)
                if session.current_step >= KILL_AT and doomed.proc and doomed.proc.poll() is None:
                    doomed.stop(signal.SIGKILL)
        return session.id, outputs

    session_id, outputs = asyncio.run(run())
    assert doomed.proc is not None
    assert doomed.proc.returncode == -signal.SIGKILL
    assert httpx.get(f"{survivor.url}/v1/sessions/{session_id}").json()["step"] == STEPS
    assert_whole(outputs, expected(survivor.url, parts), parts)


def test_a_plain_client_sees_the_same_session_on_both(
    pair: tuple[list[ServerProcess], list[FaultProxy]],
) -> None:
    (first, second), _ = pair
    with Client(first.url) as a, Client(second.url) as b:
        session = a.create_session(MODEL)
        session.step(np.ones((3, 3)))
        assert b.session(session.id).current_step == 3
