"""Per-session wait lines and the step queue: bounded, refused with 429 + Retry-After, and a
refused request changes nothing; waiting requests run in the order they arrived."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from fastapi.testclient import TestClient
from seqserve.service.api.context import app_context

from tests.service.conftest import MakeClient, co2_like, new_session
from tests.service.expected import Expected

TOL = 1e-5


async def _settle() -> None:
    """Let every started request run up to where it blocks (the app does no I/O here)."""
    for _ in range(200):
        await asyncio.sleep(0)


def _http(client: TestClient) -> httpx.AsyncClient:
    """Requests from inside the app's own event loop, through the whole ASGI stack."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=client.app), base_url="http://t")


def _refusal(response: httpx.Response, retry_after: int) -> dict[str, Any]:
    assert response.status_code == 429, response.text
    assert response.headers["retry-after"] == str(retry_after)
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == 429
    assert body["retry_after_s"] == retry_after
    return body


def test_sixteen_per_session_then_429_and_the_line_keeps_arrival_order(
    make_client: MakeClient, repo: Path
) -> None:
    client = make_client(limits={"retry_after_s": 3})
    engine = app_context(client.app).engine  # type: ignore[arg-type]
    sid = new_session(client)["id"]
    url = f"/v1/sessions/{sid}/steps"
    raw = co2_like(15, seed=11)

    async def scenario() -> tuple[httpx.Response, list[httpx.Response]]:
        async with _http(client) as http:
            # the test holds the session as a step in progress would: one running...
            async with engine._locks.exclusive(sid):
                line = []
                for k in range(15):  # ...and fifteen waiting, sent one after another
                    body = {"inputs": raw[k : k + 1].tolist()}
                    line.append(asyncio.create_task(http.post(url, json=body)))
                    await _settle()
                extra = asyncio.create_task(http.post(url, json={"inputs": [[999.0]]}))
                await _settle()
                if not extra.done():  # it joined the line instead of being refused
                    extra.cancel()
                    raise AssertionError("a sixteenth concurrent request was not refused")
                assert not any(task.done() for task in line)
            return extra.result(), list(await asyncio.gather(*line))

    refused, served = client.portal.call(scenario)
    assert "too many concurrent requests" in _refusal(refused, 3)["detail"]
    assert [r.status_code for r in served] == [200] * 15
    assert [r.json()["step"] for r in served] == list(range(1, 16))  # applied as they arrived
    got = np.concatenate([r.json()["outputs"] for r in served])
    np.testing.assert_allclose(got, Expected(repo / "diffed" / "2").run(raw)[0], atol=TOL)
    assert client.get(url.removesuffix("/steps")).json()["step"] == 15  # the 429 applied nothing


def test_a_full_step_queue_answers_429_and_changes_nothing(make_client: MakeClient) -> None:
    # one queued step fills the queue; a long non-adaptive window keeps it queued meanwhile
    batching = {"max_queue": 1, "max_wait_us": 1_000_000, "adaptive": False}
    client = make_client(batching=batching, limits={"retry_after_s": 2})
    first, second = new_session(client)["id"], new_session(client)["id"]
    before = client.get(f"/v1/sessions/{second}/state").json()

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with _http(client) as http:
            queued = asyncio.create_task(
                http.post(f"/v1/sessions/{first}/steps", json={"inputs": [[315.0]]})
            )
            await _settle()
            extra = asyncio.create_task(
                http.post(f"/v1/sessions/{second}/steps", json={"inputs": [[315.0]]})
            )
            await _settle()
            assert extra.done(), "the second step was queued, not refused"
            assert not queued.done()
            return extra.result(), await queued

    refused, served = client.portal.call(scenario)
    assert "queue is full" in _refusal(refused, 2)["detail"]
    assert served.status_code == 200
    assert served.json()["step"] == 1
    assert client.get(f"/v1/sessions/{second}/state").json() == before
    # the refusal left nothing behind: the session steps normally once the queue has room
    r = client.post(f"/v1/sessions/{second}/steps", json={"inputs": [[315.0]], "step": 0})
    assert r.status_code == 200
    assert r.json()["step"] == 1
