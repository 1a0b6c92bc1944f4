"""The protocol-agnostic engine: sessions, stepping, forecasting and stateless prediction."""

from __future__ import annotations

import asyncio
import hashlib
import time
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import numpy as np
from seqserve.service import stateless
from seqserve.service.batching.batcher import StepBatcher, StepJob, StepResult
from seqserve.service.checks import (
    check_carry,
    check_forecast,
    check_output_size,
    check_step_room,
    check_steps,
    session_ttls,
)
from seqserve.service.errors import (
    BadInput,
    Conflict,
    Gone,
    NotFound,
    StepConflict,
    Unavailable,
    VersionMoved,
)
from seqserve.service.heavy_gate import HeavyGate
from seqserve.service.metrics import Metrics
from seqserve.service.repository import RepositoryControl
from seqserve.service.runtime.compute import roll, rollout
from seqserve.service.runtime.layout import StateRows
from seqserve.service.runtime.registry import LoadedModel, Registry
from seqserve.service.session_locks import SessionLocks
from seqserve.service.settings import Settings
from seqserve.service.state.codec import decode_state, encode_state, state_target
from seqserve.service.state.store import Session, StateStore
from seqserve.service.tracing import Tracing

Array = np.ndarray
T = TypeVar("T")

MAX_WAITERS_PER_SESSION = 16
STREAM_CHUNK = 64  # forecast-stream steps per thread hop: few hops, quick to stop


def _digest(raw: Array) -> bytes:
    return hashlib.blake2b(repr(raw.shape).encode() + raw.tobytes(), digest_size=16).digest()


def _committed(job: asyncio.Future[T], then: Callable[[], None]) -> asyncio.Future[T]:
    """What a request awaits for its batched step: `then` runs once the step is done, and
    cancelling the returned future leaves the step running (as `asyncio.shield` plus a done
    callback, with one callback and one future a step instead of three and two)."""
    answer: asyncio.Future[T] = job.get_loop().create_future()

    def done(_: asyncio.Future[T]) -> None:
        then()
        if answer.cancelled():
            if not job.cancelled():
                job.exception()  # retrieved: nobody is left to read it
        elif job.cancelled():
            answer.cancel()
        elif (error := job.exception()) is not None:
            answer.set_exception(error)
        else:
            answer.set_result(job.result())

    job.add_done_callback(done)
    return answer


class Engine:
    def __init__(
        self, settings: Settings, registry: Registry, store: StateStore, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self.metrics = metrics
        self.draining = False  # set on SIGTERM: new sessions go to other replicas
        self.tracing: Tracing | None = None  # set by create_app when tracing is on
        # steps and heavy work (forecasts, stateless predicts) run in separate pools: a step
        # never queues behind a long forecast
        self._pool = ThreadPoolExecutor(settings.ort_pool_size, thread_name_prefix="ort")
        self._heavy_pool = ThreadPoolExecutor(
            settings.ort_heavy_pool_size, thread_name_prefix="ort-heavy"
        )
        self._heavy = HeavyGate(settings.limits.max_heavy_per_client, settings.limits.retry_after_s)
        self._locks = SessionLocks(MAX_WAITERS_PER_SESSION, settings.limits.retry_after_s)
        self._batchers: dict[tuple[str, str], StepBatcher] = {}
        for model in registry.all():
            self._observe(model)
        self.repository = RepositoryControl(registry, settings, self._retire, self._observe)

    def _observe(self, model: LoadedModel) -> None:
        m = model.manifest
        model.runtime.observe = self.metrics.runtime_observer(m.name, m.version)
        self.metrics.watch_model(m.name, m.version, model.runtime.provider)

    async def _retire(self, models: list[LoadedModel]) -> None:
        """Unloaded versions: their steps already queued or running finish, then the batcher
        stops (no new step reaches it: lookups of an unloaded version fail first)."""
        for model in models:
            batcher = self._batchers.pop((model.manifest.name, model.manifest.version), None)
            if batcher is not None:
                await batcher.drain()

    def session_model(self, session: Session) -> LoadedModel:
        """The version a session started on, never another (410/503 when not served here)."""
        retry_after = self.settings.limits.retry_after_s
        return self.registry.for_session(session.model, session.version, retry_after)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._heavy_pool.shutdown(wait=True)

    async def stop_batching(self) -> None:
        for batcher in self._batchers.values():
            await batcher.close()

    def _batcher(self, model: LoadedModel) -> StepBatcher:
        key = (model.manifest.name, model.manifest.version)
        batcher = self._batchers.get(key)
        if batcher is None:
            b = self.settings.batching
            batcher = self._batchers[key] = StepBatcher(
                model,
                self.store,
                self._run,
                max_batch=b.max_batch_size,
                max_wait_s=b.max_wait_us / 1e6,
                max_queue=b.max_queue,
                retry_after_s=self.settings.limits.retry_after_s,
                adaptive=b.adaptive,
            )
            batcher.observer = self.metrics.batch_observer(*key, batcher.depth)
            batcher.tracing = self.tracing
        return batcher

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, partial(fn, *args))

    async def _run_heavy(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._heavy_pool, partial(fn, *args))

    # -- sessions --------------------------------------------------------------------------

    async def get_session(self, session_id: str, owner: str | None) -> Session:
        session = await self.store.get(session_id)
        if owner is not None and session.owner != owner:
            raise NotFound(f"no session {session_id}", session_id=session_id)
        return session

    async def create_session(
        self,
        owner: str | None,
        model: str | None,
        version: str | None = None,
        idle_ttl_s: float | None = None,
        ttl_s: float | None = None,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        """A new session; `session_id` (for adapters that derive ids, e.g. V2 sequences) must
        not name a live session: use `restart_session` to replace one."""
        if self.draining:
            raise Unavailable(
                "the server is shutting down: create the session on another replica",
                self.settings.limits.retry_after_s,
            )
        if state is not None:
            target = state_target(state)
            for key, given, found in zip(
                ("model", "version"), (model, version), target, strict=False
            ):
                if given is not None and found != given:
                    raise BadInput(f"state is for {key} {found!r}, not {given!r}")
            model, version = target
        if model is None:
            raise BadInput("give a model (or a state document)")
        loaded = self.registry.get(model, version)
        idle, total = session_ttls(self.settings.sessions, idle_ttl_s, ttl_s)
        step, rows = 0, None
        if state is not None:
            step, rows = decode_state(state, loaded.state_names, loaded.layout)
            check_carry(loaded, rows)
        now = time.time()
        session = Session(
            id=session_id or "",  # the store assigns a fresh id
            model=loaded.manifest.name,
            version=loaded.manifest.version,
            owner=owner,
            step=step,
            created_at=now,
            last_used=now,
            idle_ttl_s=idle,
            ttl_s=total,
        )
        await self.store.create(session, loaded.layout, rows)
        self.metrics.sessions_created.inc()
        return session

    async def restart_session(
        self, session_id: str, owner: str | None, model: str, version: str | None = None
    ) -> Session:
        """Create session `session_id` from zero state, first ending a live one of that id."""
        async with self._locks.exclusive(session_id):
            try:
                old: Session | None = await self.store.get(session_id)
            except (NotFound, Gone):
                old = None
            if old is not None:
                if owner is not None and old.owner != owner:
                    raise Conflict(f"session id {session_id} belongs to another caller")
                await self.store.delete(session_id)
                self.metrics.sessions_deleted.inc()
            return await self.create_session(owner, model, version, session_id=session_id)

    async def list_sessions(self, owner: str | None, limit: int | None = None) -> list[Session]:
        return await self.store.sessions_of(owner, limit)

    async def step(
        self,
        session_id: str,
        owner: str | None,
        raw: Array,
        expected: int | None,
        version: str | None = None,
    ) -> StepResult:
        """Step the session by raw [T, F]; `version`, if given, is the model version the caller
        checked the request against: a session on another raises VersionMoved, unchanged."""
        await self._locks.acquire(session_id)
        handed_over = False
        try:
            # one read, under the lock: with Redis each read is a round trip
            session = await self.get_session(session_id, owner)
            model = self.session_model(session)
            if version is not None and model.manifest.version != version:
                raise VersionMoved(model)
            raw = check_steps(model, raw, self.settings.limits.max_steps_per_request)
            digest = _digest(raw)
            if expected is not None and expected != session.step:
                return await self._replay(session, expected, digest)
            check_step_room(session.step, raw.shape[0])
            future = self._batcher(model).submit(StepJob(session, raw, digest))
            # the session stays locked until its step is committed, even if this request
            # is cancelled meanwhile (a client that went away): no second step can overtake it
            answer = _committed(future, lambda: self._locks.release(session_id))
            handed_over = True
            try:
                result = await answer
            except StepConflict:
                if expected is None:
                    raise
                # another replica committed this index first: answer as its retry is answered
                fresh = await self.get_session(session_id, owner)
                return await self._replay(fresh, expected, digest)
        finally:
            if not handed_over:
                self._locks.release(session_id)
        self.metrics.steps_counter(session.model)(raw.shape[0])
        return result

    async def _replay(self, session: Session, expected: int, digest: bytes) -> StepResult:
        """A retry of one of the last `replay_depth` applied requests gets its stored answer
        and the step index that request ended at."""
        if expected < session.step:
            for reply in await self.store.replies(session):
                if reply.start != expected:
                    continue
                if reply.digest != digest:
                    raise StepConflict(
                        f"step {expected} was already applied with different inputs",
                        current_step=session.step,
                        expected_step=expected,
                    )
                self.metrics.replays.inc()
                end = reply.start + reply.outputs.shape[0]
                return StepResult(reply.outputs, end, replayed=True)
        raise StepConflict(
            f"request expects step {expected} but the session is at step {session.step}",
            current_step=session.step,
            expected_step=expected,
        )

    async def forecast(
        self, session_id: str, owner: str | None, horizon: int, caller: str | None = None
    ) -> tuple[Array, int]:
        """[horizon, O] predictions from the session's state, and its (unchanged) step.
        `caller` (else the owner) is who the per-client cap on heavy calls counts."""
        model, state, step = await self._forecast_start(session_id, owner, horizon)
        with self._heavy.hold(caller or owner or ""):
            return (await self._run_heavy(rollout, model, state, horizon))[0], step

    async def forecast_stream(
        self, session_id: str, owner: str | None, horizon: int, caller: str | None = None
    ) -> tuple[int, AsyncIterator[Array]]:
        """Validate now, then compute the forecast a chunk of steps at a time as it is
        consumed: a consumer that stops (a client that went away) stops the computation."""
        model, state, step = await self._forecast_start(session_id, owner, horizon)
        slot = self._heavy.enter(caller or owner or "")

        async def rows() -> AsyncIterator[Array]:
            try:
                current = state
                yield current.last_y[0]
                done = 1
                while done < horizon:
                    n = min(STREAM_CHUNK, horizon - done)
                    block, current = await self._run_heavy(roll, model, current, n)
                    for row in block[0]:
                        yield row
                    done += n
            finally:
                slot.release()

        stream = rows()
        weakref.finalize(stream, slot.release)  # a stream never iterated frees its slot too
        return step, stream

    async def _forecast_start(
        self, session_id: str, owner: str | None, horizon: int
    ) -> tuple[LoadedModel, StateRows, int]:
        session = await self.get_session(session_id, owner)
        model = self.session_model(session)
        check_forecast(model, horizon, self.settings.limits.max_horizon)
        check_output_size(self.settings.limits, horizon * model.manifest.n_outputs)
        if session.step == 0:
            raise Conflict(
                "the session has no input yet: step it at least once before forecasting",
                current_step=0,
            )
        state = await self.store.load([session], model.layout)
        session.last_used = time.time()
        await self.store.touch(session)
        return model, state, session.step

    async def reset(self, session_id: str, owner: str | None) -> Session:
        async with self._locks.exclusive(session_id):
            session = await self.get_session(session_id, owner)
            model = self.session_model(session)
            expected = session.step
            session.step, session.replay, session.last_used = 0, None, time.time()
            zeros = model.layout.zeros(1)
            error = (await self.store.save([session], model.layout, zeros, [expected]))[0]
            if error is not None:
                raise error
        return session

    # reset, fork, export and delete take the session lock: they wait for the session's
    # steps in flight, so none of those runs on (or writes to) a session that ended under it

    async def fork(self, session_id: str, owner: str | None) -> Session:
        """A new session (same owner, model version and TTLs) with a copy of the state."""
        async with self._locks.exclusive(session_id):
            parent = await self.get_session(session_id, owner)
            doc = await self._export(parent)
        return await self.create_session(
            owner, None, idle_ttl_s=parent.idle_ttl_s, ttl_s=parent.ttl_s, state=doc
        )

    async def export_state(self, session_id: str, owner: str | None) -> dict[str, Any]:
        async with self._locks.exclusive(session_id):
            return await self._export(await self.get_session(session_id, owner))

    async def _export(self, session: Session) -> dict[str, Any]:
        model = self.session_model(session)
        rows = await self.store.load([session], model.layout)
        return encode_state(session.model, session.version, session.step, model.state_names, rows)

    async def delete(self, session_id: str, owner: str | None) -> None:
        async with self._locks.exclusive(session_id):
            await self.get_session(session_id, owner)
            await self.store.delete(session_id)
        self.metrics.sessions_deleted.inc()

    # -- stateless ---------------------------------------------------------------------------

    async def predict(
        self,
        name: str,
        version: str | None,
        sequences: list[Array],
        horizon: int | None,
        caller: str = "",
    ) -> tuple[list[Array], list[Array] | None]:
        """Whole sequences [T_i, F] from zero state -> outputs [T_i, O] (+ forecasts)."""
        model = self.registry.get(name, version)
        limits = self.settings.limits
        with self._heavy.hold(caller):
            return await stateless.predict(self._run_heavy, model, limits, sequences, horizon)

    async def run_batch(
        self,
        name: str,
        version: str | None,
        raw: Array,
        state: list[Array] | None = None,
        caller: str = "",
    ) -> tuple[Array, list[Array]]:
        """Stateless [B, T, F] from zero or the given state tensors ([B, L, H] each)."""
        model = self.registry.get(name, version)
        limits = self.settings.limits
        with self._heavy.hold(caller):
            return await stateless.run_batch(self._run_heavy, model, limits, raw, state)
