"""The step batcher: pure assembly, equality with unbatched runs, failure isolation."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from seqserve.service.api.context import app_context
from seqserve.service.batching.assemble import group_by_length, run_groups
from seqserve.service.runtime.compute import advance
from seqserve.service.runtime.registry import LoadedModel

from tests.service.conftest import MakeClient, new_session, step


@pytest.fixture(scope="module")
def multi(repo: Path) -> LoadedModel:
    return LoadedModel.load(repo / "multi" / "1", threads=1)


def test_group_by_length() -> None:
    assert group_by_length([1, 3, 1, 2, 3]) == {1: [0, 2], 3: [1, 4], 2: [3]}


def test_batched_groups_equal_unbatched_runs(multi: LoadedModel) -> None:
    rng = np.random.default_rng(0)
    lengths = [1, 4, 1, 7, 4, 1, 2]
    raws = [rng.normal(size=(n, 3)) for n in lengths]
    state = multi.layout.zeros(len(raws))
    for t in state.tensors:
        t[:] = rng.normal(size=t.shape).astype(np.float32)
    state.prev_x[:] = rng.normal(size=state.prev_x.shape)
    has_prev = np.array([True, False, True, True, False, True, False])
    results, new = run_groups(lambda *a: advance(multi, *a), raws, state, has_prev)
    for i, raw in enumerate(raws):
        alone, rows = advance(multi, raw[None], _row(state, i), has_prev[i : i + 1])
        np.testing.assert_allclose(results[i], alone[0], atol=1e-6)
        for have, want in zip(new.tensors, rows.tensors, strict=True):
            np.testing.assert_allclose(have[i], want[0], atol=1e-6)


def _row(state, i):  # type: ignore[no-untyped-def]
    return state.take(i)


def test_a_failing_group_fails_only_its_own_steps(multi: LoadedModel) -> None:
    raws = [np.ones((1, 3)), np.ones((3, 3)), np.ones((1, 3))]
    state = multi.layout.zeros(3)

    def flaky(raw, rows, has_prev):  # type: ignore[no-untyped-def]
        if raw.shape[1] == 3:
            raise RuntimeError("boom")
        return advance(multi, raw, rows, has_prev)

    results, new = run_groups(flaky, raws, state, np.zeros(3, bool))
    assert isinstance(results[1], RuntimeError)
    assert isinstance(results[0], np.ndarray)
    assert isinstance(results[2], np.ndarray)
    assert not new.tensors[0][1].any()  # the failed step's state is left as it was
    assert new.tensors[0][0].any()


def test_failed_inference_is_a_clean_500_and_changes_nothing(make_client: MakeClient) -> None:
    client = make_client(batching={"max_wait_us": 0})
    engine = app_context(client.app).engine  # type: ignore[arg-type]
    runtime = engine.registry.get("diffed").runtime
    real_run = runtime.run

    def fail_on_long_chunks(x, states):  # type: ignore[no-untyped-def]
        if x.shape[1] == 3:  # fault injection around the real ONNX Runtime session
            raise RuntimeError("injected failure")
        return real_run(x, states)

    runtime.run = fail_on_long_chunks
    sid = new_session(client)["id"]
    step(client, sid, [[315.0]])
    before = client.get(f"/v1/sessions/{sid}/state").json()
    r = step(client, sid, [[316.0], [317.0], [318.0]], step=1)
    assert r.status_code == 500
    assert "injected" not in r.text
    assert r.json()["type"].endswith("/inference-failed")
    assert client.get(f"/v1/sessions/{sid}/state").json() == before
    assert step(client, sid, [[316.0]], step=1).status_code == 200


def test_onnx_runtime_never_runs_on_the_event_loop(client: TestClient) -> None:
    engine = app_context(client.app).engine  # type: ignore[arg-type]
    runtime = engine.registry.get("diffed").runtime
    threads: list[str] = []
    runtime.observe = lambda seconds, batch: threads.append(threading.current_thread().name)
    sid = new_session(client)["id"]
    step(client, sid, [[315.0], [316.0]])
    client.post(f"/v1/sessions/{sid}/forecast", json={"horizon": 3})
    client.post("/v1/models/diffed/predict", json={"inputs": [[[1.0]]]})
    assert threads
    assert all(name.startswith("ort") for name in threads), threads


def test_same_session_never_twice_in_a_batch(make_client: MakeClient) -> None:
    client = make_client(batching={"max_wait_us": 20000})
    engine = app_context(client.app).engine  # type: ignore[arg-type]
    runtime = engine.registry.get("diffed").runtime
    sizes: list[int] = []
    runtime.observe = lambda seconds, batch: sizes.append(batch)
    sid = new_session(client)["id"]

    async def burst() -> list[int]:
        results = await asyncio.gather(
            *(engine.step(sid, None, np.array([[315.0 + k]]), None) for k in range(6))
        )
        return sorted(r.step for r in results)

    assert client.portal.call(burst) == [1, 2, 3, 4, 5, 6]  # type: ignore[union-attr]
    assert sizes == [1] * 6
