"""The client's calls against a real server: sessions, conflicts, typed errors."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from scripts.launch import ServerProcess
from seqserve.client import AsyncClient, BadInput, Client, NotFound, SessionGone, StepConflict
from tests.e2e.client.test_exactly_once import MODEL

X = np.arange(12, dtype=np.float64).reshape(4, 3) / 10


def test_session_calls(server: ServerProcess) -> None:
    with Client(server.url) as client:
        assert MODEL in [m["name"] for m in client.models()]
        session = client.create_session(MODEL, idle_ttl_s=60)
        first = session.step(X[:2])
        assert first.shape[0] == 2
        assert session.current_step == 2
        forecast = session.forecast(3)
        assert forecast.shape[0] == 3
        assert session.refresh()["step"] == 2  # a forecast leaves the state alone
        twin = client.import_session(session.export_state())
        fork = session.fork()
        rest = [s.step(X[2:]) for s in (session, twin, fork)]
        np.testing.assert_allclose(rest[1], rest[0], atol=1e-6)
        np.testing.assert_allclose(rest[2], rest[0], atol=1e-6)
        assert session.id in [s["id"] for s in client.sessions()]
        session.reset()
        assert session.current_step == 0
        np.testing.assert_allclose(session.step(X[:2]), first, atol=1e-6)
        session.delete()
        with pytest.raises((NotFound, SessionGone)):
            client.session(session.id)


def test_a_stale_client_gets_a_step_conflict_and_applies_nothing(
    server: ServerProcess,
) -> None:
    with Client(server.url) as client:
        mine = client.create_session(MODEL)
        stale = client.session(mine.id)
        mine.step(X[:2])
        with pytest.raises(StepConflict) as caught:
            stale.step(X[2:])  # expects step 0; the session is at 2
        assert caught.value.current_step == 2
        assert caught.value.status == 409
        assert mine.refresh()["step"] == 2


def test_bad_input_is_typed_and_not_retried(server: ServerProcess) -> None:
    with Client(server.url) as client:
        session = client.create_session(MODEL)
        with pytest.raises(BadInput) as caught:
            session.step(np.ones((2, 5)))  # 5 features, the model takes 3
        assert caught.value.status == 422
        with pytest.raises(NotFound):
            client.create_session("no-such-model")


def test_the_async_client_steps_and_streams(server: ServerProcess) -> None:
    async def run() -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        async with AsyncClient(server.url) as client:
            session = await client.create_session(MODEL)
            head = await session.step(X[:1])
            streamed = [out async for out in session.stream([X[1:2], X[2:]])]
            whole = (await client.predict(MODEL, [X]))["outputs"][0]
            return head, streamed, whole

    head, streamed, whole = asyncio.run(run())
    np.testing.assert_allclose(np.concatenate([head, *streamed]), whole, atol=1e-5)
