"""The step batcher's closing rules, shutdown and failure paths, driven pass by pass."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from seqserve.service.batching.assemble import run_groups, select
from seqserve.service.batching.batcher import QUIET_PASSES, StepBatcher, StepJob, StepResult
from seqserve.service.errors import InferenceFailed, Unavailable
from seqserve.service.runtime.compute import advance
from seqserve.service.runtime.layout import Layout, StateRows
from seqserve.service.runtime.registry import LoadedModel
from seqserve.service.state.memory import MemoryStateStore
from seqserve.service.state.store import Session
from seqserve.service.state.table import DIGEST_BYTES

GUARD_S = 30.0  # a batch that never closes fails the test instead of hanging it
Q = QUIET_PASSES


@pytest.fixture(scope="module")
def model(repo: Path) -> LoadedModel:
    return LoadedModel.load(repo / "diffed" / "1", threads=1)


class FailingStore(MemoryStateStore):
    """The real memory store, with a fault injected into the next load (e.g. Redis down)."""

    fail_next: Exception | None = None

    async def load(self, sessions: list[Session], layout: Layout) -> StateRows:
        error, self.fail_next = self.fail_next, None
        if error is not None:
            raise error
        return await super().load(sessions, layout)


class Rig:
    """A batcher over a real memory store and real ONNX Runtime in a real thread pool; it
    records the size of every batch handed to the pool and every queue wait."""

    def __init__(self, model: LoadedModel, **options: Any) -> None:
        self.model = model
        self.store = FailingStore(1000, 1 << 30, 1, 60.0)
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="ort")
        self.batches: list[int] = []
        self.waits: list[float] = []
        settings: dict[str, Any] = {
            "max_batch": 100,
            "max_wait_s": 1.0,  # seconds of slack; also makes `now * w` and `now / w` == now
            "max_queue": 1000,
            "retry_after_s": 1,
        }
        self.batcher = StepBatcher(model, self.store, self._run, **(settings | options))
        self.batcher.observer = _Observer(self.waits)

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        self.batches.append(len(args[1]))  # run_groups(advance, raws, state, has_prev)
        return await asyncio.get_running_loop().run_in_executor(self.pool, partial(fn, *args))

    async def job(self, value: float = 316.0) -> StepJob:
        now = time.time()
        m = self.model.manifest
        session = Session("", m.name, m.version, None, 0, now, now, 3600.0, 3600.0)
        await self.store.create(session, self.model.layout, None)
        return StepJob(session, np.array([[value]]), bytes(DIGEST_BYTES))

    async def submit(self, value: float = 316.0) -> asyncio.Future[StepResult]:
        return self.batcher.submit(await self.job(value))


class _Observer:
    def __init__(self, waits: list[float]) -> None:
        self.wait = waits.append

    def started(self) -> None:
        pass

    def finished(self) -> None:
        pass


def play(model: LoadedModel, scenario: Callable[[Rig], Awaitable[None]], **options: Any) -> Rig:
    rig = Rig(model, **options)

    async def main() -> None:
        try:
            await asyncio.wait_for(scenario(rig), GUARD_S)
        finally:
            await rig.batcher.close()

    try:
        asyncio.run(main())
    finally:
        rig.pool.shutdown(wait=True)
    return rig


async def passes(n: int) -> None:
    """Let the event loop run `n` more passes (the batcher counts quiet ones)."""
    for _ in range(n):
        await asyncio.sleep(0)


async def results(futures: list[asyncio.Future[StepResult]]) -> list[StepResult]:
    return list(await asyncio.gather(*futures))


def test_steps_arriving_within_the_quiet_passes_join_one_batch(model: LoadedModel) -> None:
    async def scenario(rig: Rig) -> None:
        futures = [await rig.submit()]
        await passes(Q)  # each gap brings a step on the last pass before the batch would close
        futures.append(await rig.submit())
        await passes(Q)
        futures.append(await rig.submit())
        await passes(Q + 1)  # one pass too many: the batch has left without this step
        futures.append(await rig.submit())
        assert [r.step for r in await results(futures)] == [1, 1, 1, 1]

    assert play(model, scenario).batches == [3, 1]


def test_a_lone_step_leaves_after_the_quiet_passes(model: LoadedModel) -> None:
    async def scenario(rig: Rig) -> None:
        futures = [await rig.submit()]
        await passes(Q + 1)  # nobody came within QUIET_PASSES passes: it left alone
        futures.append(await rig.submit())
        await results(futures)

    assert play(model, scenario).batches == [1, 1]


def test_a_full_batch_leaves_without_waiting_for_quiet_passes(model: LoadedModel) -> None:
    async def scenario(rig: Rig) -> None:
        futures = [await rig.submit()]
        await passes(1)
        futures.append(await rig.submit())
        await passes(2)  # fewer than QUIET_PASSES: only fullness can have closed the batch
        assert rig.batches == [2]
        await results(futures)

    play(model, scenario, max_batch=2)


def test_a_max_wait_shorter_than_a_pass_closes_a_growing_batch(model: LoadedModel) -> None:
    async def scenario(rig: Rig) -> None:
        futures = []
        for _ in range(8):  # a step every pass: the loop never goes quiet
            futures.append(await rig.submit())
            await passes(1)
        await results(futures)

    rig = play(model, scenario, max_wait_s=1e-9)
    assert sum(rig.batches) == 8
    assert rig.batches[0] < 8, rig.batches


def test_without_adaptive_closing_a_batch_waits_until_full(model: LoadedModel) -> None:
    async def scenario(rig: Rig) -> None:
        futures = [await rig.submit()]
        await passes(Q + 1)  # quiet passes do not close it
        futures.append(await rig.submit())
        await passes(Q + 1)
        futures.append(await rig.submit())  # the third fills it: it leaves now, not in an hour
        await results(futures)

    rig = play(model, scenario, max_batch=3, max_wait_s=3600.0, adaptive=False)
    assert rig.batches == [3]


def test_without_adaptive_closing_a_backlog_leaves_in_full_batches(model: LoadedModel) -> None:
    async def scenario(rig: Rig) -> None:
        await results([await rig.submit() for _ in range(4)])

    rig = play(model, scenario, max_batch=2, max_wait_s=3600.0, adaptive=False)
    assert rig.batches == [2, 2]


def test_a_max_wait_of_zero_runs_steps_one_by_one(model: LoadedModel) -> None:
    async def scenario(rig: Rig) -> None:
        await results([await rig.submit() for _ in range(3)])

    assert play(model, scenario, max_batch=8, max_wait_s=0.0).batches == [1, 1, 1]


def test_drain_finishes_every_step_already_submitted(model: LoadedModel) -> None:
    async def scenario(rig: Rig) -> None:
        futures = [await rig.submit(316.0 + k) for k in range(3)]
        await rig.batcher.drain()
        assert all(f.done() and f.exception() is None for f in futures)
        assert [f.result().step for f in futures] == [1, 1, 1]

    assert play(model, scenario, max_batch=2).batches == [2, 1]


def test_drain_and_close_of_an_idle_batcher_return(model: LoadedModel) -> None:
    async def scenario(rig: Rig) -> None:
        await rig.batcher.close()  # never started
        await rig.batcher.drain()

    assert play(model, scenario).batches == []


def test_close_fails_the_steps_still_queued(model: LoadedModel) -> None:
    async def scenario(rig: Rig) -> None:
        gone = await rig.submit()
        gone.cancel()  # its caller left: close must not trip over it
        queued = [await rig.submit(), await rig.submit()]
        await rig.batcher.close()
        for future in queued:
            with pytest.raises(InferenceFailed, match="shutting down"):
                future.result()

    assert play(model, scenario).batches == []


def test_a_failed_batch_fails_each_of_its_steps_and_the_next_runs(
    model: LoadedModel, caplog: pytest.LogCaptureFixture
) -> None:
    down = Unavailable("the state store is unreachable", retry_after_s=1)

    async def scenario(rig: Rig) -> None:
        rig.store.fail_next = RuntimeError("a bug")
        first = [await rig.submit(), await rig.submit()]
        for future in first:
            with pytest.raises(InferenceFailed, match="step failed"):
                await future
        assert [r.exc_info is not None for r in caplog.records] == [True]
        caplog.clear()
        rig.store.fail_next = down  # a domain error reaches the callers as it is
        second = [await rig.submit(), await rig.submit()]
        for future in second:
            with pytest.raises(Unavailable) as raised:
                await future
            assert raised.value is down
        assert not caplog.records  # expected failures are not logged as crashes
        assert [r.step for r in await results([await rig.submit()])] == [1]

    with caplog.at_level(logging.ERROR, logger="seqserve.batcher"):
        rig = play(model, scenario)
    assert rig.batches == [1]  # the failed batches never reached the model


def test_a_step_whose_caller_left_does_not_hold_back_its_batch(model: LoadedModel) -> None:
    async def scenario(rig: Rig) -> None:
        left, stays = await rig.job(), await rig.job()
        rig.batcher.submit(left).cancel()
        assert (await results([rig.batcher.submit(stays)]))[0].step == 1
        assert left.session.step == 1  # committed all the same: the engine's lock relies on it

    assert play(model, scenario).batches == [2]


def test_queue_waits_are_the_time_each_step_spent_queued(model: LoadedModel) -> None:
    async def scenario(rig: Rig) -> None:
        await results([await rig.submit() for _ in range(3)])

    before = time.perf_counter()
    rig = play(model, scenario)
    elapsed = time.perf_counter() - before
    assert len(rig.waits) == 3
    assert all(0.0 <= wait <= elapsed for wait in rig.waits), (rig.waits, elapsed)


def test_a_failing_single_group_returns_its_error_for_each_step(model: LoadedModel) -> None:
    state = model.layout.zeros(3)
    boom = RuntimeError("boom")

    def failing(raw: Any, rows: Any, has_prev: Any) -> Any:
        raise boom

    raws = [np.ones((2, 1))] * 3
    out, new = run_groups(failing, raws, state, np.zeros(3, bool))
    assert out == [boom, boom, boom]
    assert new is state  # the common case hands back the rows it was given, not a copy


def test_a_failing_first_group_does_not_stop_the_later_ones(model: LoadedModel) -> None:
    raws = [np.full((3, 1), 316.0), np.full((1, 1), 316.0), np.full((1, 1), 317.0)]
    state = model.layout.zeros(3)

    def first_fails(raw: Any, rows: Any, has_prev: Any) -> Any:
        if raw.shape[1] == 3:
            raise RuntimeError("boom")
        return advance(model, raw, rows, has_prev)

    out, new = run_groups(first_fails, raws, state, np.zeros(3, bool))
    alone, _ = advance(model, np.stack(raws[1:]), select(state, [1, 2]), np.zeros(2, bool))
    assert isinstance(out[0], RuntimeError)
    np.testing.assert_allclose(np.stack([out[1], out[2]]), alone)
    assert new.tensors[0][1:].any()
    assert not new.tensors[0][0].any()
