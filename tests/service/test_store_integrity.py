"""Commits that never cross sessions: the memory store's per-session all-or-nothing save, the
batcher committing only the groups that ran, and tombstones that expire (an injected clock)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from seqserve.service.batching.batcher import StepBatcher, StepJob, StepResult
from seqserve.service.errors import BadInput, Gone, InferenceFailed, NotFound
from seqserve.service.runtime.layout import StateRows
from seqserve.service.runtime.registry import LoadedModel
from seqserve.service.state.memory import MemoryStateStore
from seqserve.service.state.store import Replay, Session

from tests.service.expected import Expected

TOL = 1e-5


def _session(model: LoadedModel, now: float = 1000.0, **fields: Any) -> Session:
    m = model.manifest
    kw: dict[str, Any] = {"owner": None, "step": 0, "created_at": now, "last_used": now}
    kw |= {"idle_ttl_s": 60.0, "ttl_s": 600.0, **fields}
    return Session(id="", model=m.name, version=m.version, **kw)


def _store(clock: Callable[[], float] = lambda: 1000.0) -> MemoryStateStore:
    return MemoryStateStore(100, 1 << 30, 1, tombstone_ttl_s=30.0, clock=clock)


def _same(a: StateRows, b: StateRows) -> bool:
    arrays = zip([*a.tensors, a.prev_x, a.last_y], [*b.tensors, b.prev_x, b.last_y], strict=True)
    return all(np.array_equal(x, y) for x, y in arrays)


def _random_rows(model: LoadedModel, seed: int) -> StateRows:
    rows = model.layout.zeros(1)
    rng = np.random.default_rng(seed)
    for t in rows.tensors:
        t[:] = rng.normal(size=t.shape)
    return rows


@pytest.fixture(scope="module")
def multi(repo: Path) -> LoadedModel:
    return LoadedModel.load(repo / "multi" / "1", threads=1)


@pytest.fixture(scope="module")
def gru(repo: Path) -> LoadedModel:
    return LoadedModel.load(repo / "gru" / "1", threads=1)


def test_one_unwritable_session_never_fails_or_half_commits_another(multi: LoadedModel) -> None:
    async def scenario() -> None:
        store, layout = _store(), multi.layout
        victim, bad = _session(multi), _session(multi)
        for s in (victim, bad):
            await store.create(s, layout, None)
        bad_before = await store.load([await store.get(bad.id)], layout)
        # bad's new step overflows the int64 column; victim's commit is a plain step
        victim.step, bad.step = 1, 2**63
        victim.replay = Replay(0, bytes(16), np.ones((1, 3)))
        new = _random_rows(multi, 1)
        both = StateRows(
            [np.concatenate([t, t + 1]) for t in new.tensors],
            np.zeros((2, 3)),
            np.zeros((2, 3)),
        )
        errors = await store.save([victim, bad], layout, both, [0, 0])
        assert errors[0] is None
        assert isinstance(errors[1], BadInput)
        assert (await store.get(victim.id)).step == 1
        assert (await store.get(bad.id)).step == 0
        assert _same(await store.load([await store.get(victim.id)], layout), new)
        assert _same(await store.load([await store.get(bad.id)], layout), bad_before)
        assert store.stats() == (2, 2 * layout.nbytes)

    asyncio.run(scenario())


def test_memory_tombstones_answer_410_then_404_after_their_ttl(multi: LoadedModel) -> None:
    now = [1000.0]

    async def scenario() -> None:
        store = _store(lambda: now[0])
        session = _session(multi, idle_ttl_s=10.0)
        await store.create(session, multi.layout, None)
        now[0] += 11  # idle past its TTL
        with pytest.raises(Gone):
            await store.get(session.id)
        now[0] += 29  # 29 s into the 30 s tombstone: still known as expired
        assert await store.sweep() == 0
        with pytest.raises(Gone):
            await store.get(session.id)
        now[0] += 2
        await store.sweep()
        with pytest.raises(NotFound):
            await store.get(session.id)

    asyncio.run(scenario())


async def _in_pool(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args))


def _batcher(model: LoadedModel, store: MemoryStateStore, max_batch: int) -> StepBatcher:
    # a batch closes only when full (or after a minute): the test decides what shares it
    wait = 60.0 if max_batch > 1 else 0.0
    return StepBatcher(model, store, _in_pool, max_batch, wait, 64, 1, adaptive=False)


async def _step(batcher: StepBatcher, session: Session, raw: np.ndarray) -> StepResult:
    return await batcher.submit(StepJob(session, raw, bytes(16)))


def test_a_batch_with_failing_sessions_commits_the_healthy_ones_whole(
    repo: Path, multi: LoadedModel, gru: LoadedModel
) -> None:
    """Through StepBatcher with a real ONNX Runtime session: in one batch a session whose
    chunk makes its group's inference fail, and one deleted while queued (its slot taken by
    a session of another model); the healthy sessions get exactly their own new state."""
    exp = Expected(repo / "multi" / "1")
    rng = np.random.default_rng(7)
    history = {name: rng.normal(size=(n, 3)) for name, n in (("a", 3), ("b", 5), ("bad", 2))}
    chunk = {name: rng.normal(size=(1, 3)) for name in ("a", "b")}

    async def scenario() -> dict[str, Any]:
        store, layout = _store(), multi.layout
        alone, batched = _batcher(multi, store, 1), _batcher(multi, store, 4)
        sessions = {name: _session(multi) for name in ("gone", "a", "bad", "b")}
        for name, s in sessions.items():
            await store.create(s, layout, None)
            if name in history:  # distinct histories, so that swapped rows would show
                await _step(alone, await store.get(s.id), history[name])
        jobs = [
            StepJob(await store.get(sessions["gone"].id), np.ones((1, 3)), bytes(16)),
            StepJob(await store.get(sessions["a"].id), chunk["a"], bytes(16)),
            # 4 features where the model takes 3: this group's inference fails
            StepJob(await store.get(sessions["bad"].id), np.ones((2, 4)), bytes(16)),
            StepJob(await store.get(sessions["b"].id), chunk["b"], bytes(16)),
        ]
        futures = [batched.submit(job) for job in jobs[:3]]
        # "gone" ends while queued and another model's session takes its table slot
        await store.delete(sessions["gone"].id)
        newcomer = _session(gru)
        await store.create(newcomer, gru.layout, None)
        futures.append(batched.submit(jobs[3]))
        results = await asyncio.gather(*futures, return_exceptions=True)
        rows = {
            name: await store.load([await store.get(s.id)], layout)
            for name, s in sessions.items()
            if name != "gone"
        }
        rows["newcomer"] = await store.load([await store.get(newcomer.id)], gru.layout)
        steps = {
            name: (await store.get(s.id)).step for name, s in sessions.items() if name != "gone"
        }
        await alone.close()
        await batched.close()
        return {"results": results, "rows": rows, "steps": steps}

    got = asyncio.run(scenario())
    gone, a, bad, b = got["results"]
    assert isinstance(gone, Gone)
    assert isinstance(bad, InferenceFailed)
    for name, result in (("a", a), ("b", b)):
        assert isinstance(result, StepResult), result
        full = np.concatenate([history[name], chunk[name]])
        want_y, want_states = exp.run(full)
        np.testing.assert_allclose(result.outputs, want_y[-1:], atol=TOL)
        assert got["steps"][name] == full.shape[0]
        for have, want in zip(got["rows"][name].tensors, want_states, strict=True):
            np.testing.assert_allclose(have[0], want, atol=TOL)
    # the failed session keeps the state and step of its history alone
    assert got["steps"]["bad"] == 2
    for have, want in zip(got["rows"]["bad"].tensors, exp.run(history["bad"])[1], strict=True):
        np.testing.assert_allclose(have[0], want, atol=TOL)
    assert _same(got["rows"]["newcomer"], gru.layout.zeros(1))
