"""A real uvicorn process: concurrency, exactly-once under duplicates, the walkthrough."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np

from tests.e2e.conftest import StartServer
from tests.service.expected import Expected

TOL = 1e-5


def test_concurrent_duplicates_apply_exactly_once(start_server: StartServer, repo: Path) -> None:
    server = start_server()
    exp = Expected(repo / "diffed" / "2")
    raw = 315 + np.cumsum(np.random.default_rng(3).normal(0, 0.5, (24, 1)), axis=0)
    chunks = [raw[i : i + 3] for i in range(0, 24, 3)]

    async def run() -> list[list[httpx.Response]]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            sid = (await client.post("/v1/sessions", json={"model": "diffed"})).json()["id"]
            rounds = []
            for k, chunk in enumerate(chunks):
                body = {"inputs": chunk.tolist(), "step": 3 * k}
                # eight copies of the same request race each other
                rounds.append(
                    await asyncio.gather(
                        *(client.post(f"/v1/sessions/{sid}/steps", json=body) for _ in range(8))
                    )
                )
            final = (await client.get(f"/v1/sessions/{sid}")).json()
            assert final["step"] == 24
            return rounds

    rounds = asyncio.run(run())
    want = exp.run(raw)[0]
    for k, responses in enumerate(rounds):
        assert {r.status_code for r in responses} == {200}
        applied = [r for r in responses if not r.json()["replayed"]]
        assert len(applied) == 1  # the others were answered from the stored response
        for r in responses:
            np.testing.assert_allclose(r.json()["outputs"], want[3 * k : 3 * k + 3], atol=TOL)


def test_concurrent_unindexed_steps_are_serialized(start_server: StartServer, repo: Path) -> None:
    """Without step indices every request applies once, in some order, never interleaved."""
    server = start_server()
    exp = Expected(repo / "diffed" / "2")
    rng = np.random.default_rng(5)
    chunks = [
        315 + rng.normal(0, 1, (int(rng.integers(1, 5)), 1)) for _ in range(12)
    ]  # under the 16-waiter cap

    async def run() -> tuple[str, list[httpx.Response]]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            sid = (await client.post("/v1/sessions", json={"model": "diffed"})).json()["id"]
            responses = await asyncio.gather(
                *(
                    client.post(f"/v1/sessions/{sid}/steps", json={"inputs": c.tolist()})
                    for c in chunks
                )
            )
            return sid, list(responses)

    _, responses = asyncio.run(run())
    assert {r.status_code for r in responses} == {200}
    # each response's end index orders the chunks; replaying them in that order offline
    order = sorted(range(len(chunks)), key=lambda i: responses[i].json()["step"])
    ends = [responses[i].json()["step"] for i in order]
    assert ends == list(np.cumsum([len(chunks[i]) for i in order]))
    want = exp.run(np.concatenate([chunks[i] for i in order]))[0]
    got = np.concatenate([responses[i].json()["outputs"] for i in order])
    np.testing.assert_allclose(got, want, atol=TOL)


def test_walkthrough_and_headers(start_server: StartServer, repo: Path) -> None:
    server = start_server()
    exp = Expected(repo / "diffed" / "2")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        created = client.post("/v1/sessions", json={"model": "diffed"})
        assert created.status_code == 201
        assert created.headers["location"] == f"/v1/sessions/{created.json()['id']}"
        assert len(created.headers["x-request-id"]) >= 16
        sid = created.json()["id"]
        first = client.post(f"/v1/sessions/{sid}/steps", json={"inputs": [[315.7]], "step": 0})
        again = client.post(f"/v1/sessions/{sid}/steps", json={"inputs": [[315.7]], "step": 0})
        assert again.json()["outputs"] == first.json()["outputs"]
        assert (first.json()["replayed"], again.json()["replayed"]) == (False, True)
        assert again.json()["step"] == 1
        echoed = client.get("/healthz", headers={"X-Request-ID": "trace-42"})
        assert echoed.headers["x-request-id"] == "trace-42"
        fc = client.post(f"/v1/sessions/{sid}/forecast", json={"horizon": 3})
        assert fc.json()["step"] == 1
        np.testing.assert_allclose(fc.json()["forecast"], exp.forecast([[315.7]], 3), atol=TOL)
        assert client.delete(f"/v1/sessions/{sid}").status_code == 204
        metrics = client.get("/metrics").text
        assert 'route="/v1/sessions/{session_id}/steps"' in metrics
        assert "seqserve_ort_run_seconds_count" in metrics
        assert client.get("/openapi.json").json()["info"]["title"] == "seqserve"
        assert client.get("/docs").status_code == 200
