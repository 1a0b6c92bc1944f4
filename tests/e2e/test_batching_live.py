"""Batching proven on a real server: N concurrent steps of N sessions -> one ORT call of N."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import numpy as np

from tests.e2e.conftest import StartServer
from tests.service.expected import Expected

N = 12


def _histogram(metrics: str, name: str) -> tuple[float, float]:
    def value(suffix: str) -> float:
        found = re.findall(rf"^{name}_{suffix}{{[^}}]*}} (\S+)$", metrics, re.MULTILINE)
        assert found, f"{name}_{suffix} missing"
        return sum(map(float, found))  # over every model version

    return value("count"), value("sum")


def test_concurrent_sessions_share_one_onnx_call(start_server: StartServer, repo: Path) -> None:
    # a long wait makes the batch close on size, not on time: no timing in the assertion
    server = start_server(
        SEQSERVE_BATCHING__MAX_WAIT_US="1000000",
        SEQSERVE_BATCHING__MAX_BATCH_SIZE=str(N),
        SEQSERVE_BATCHING__ADAPTIVE="false",
    )
    exp = Expected(repo / "diffed" / "2")
    rng = np.random.default_rng(1)
    inputs = [315 + rng.normal(0, 1, (1, 1)) for _ in range(N)]

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            created = await asyncio.gather(
                *(client.post("/v1/sessions", json={"model": "diffed"}) for _ in range(N))
            )
            ids = [r.json()["id"] for r in created]
            return list(
                await asyncio.gather(
                    *(
                        client.post(f"/v1/sessions/{sid}/steps", json={"inputs": x.tolist()})
                        for sid, x in zip(ids, inputs, strict=True)
                    )
                )
            )

    responses = asyncio.run(run())
    metrics = httpx.get(f"{server.url}/metrics").text
    assert _histogram(metrics, "seqserve_ort_batch_size") == (1.0, float(N))
    for r, x in zip(responses, inputs, strict=True):
        np.testing.assert_allclose(r.json()["outputs"], exp.run(x)[0], atol=1e-5)
