"""The protocol-agnostic engine: sessions, stepping, forecasting and stateless prediction."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, TypeVar

import numpy as np

from service.batching.batcher import StepBatcher, StepJob, StepResult
from service.errors import (
    BadInput,
    Conflict,
    Gone,
    NotFound,
    Overloaded,
    StepConflict,
    Unavailable,
)
from service.metrics import Metrics
from service.repository.registry import LoadedModel, Registry
from service.runtime.compute import advance, forecast_step, rollout
from service.settings import Settings
from service.state.codec import decode_state, encode_state, state_target
from service.state.store import Session, StateRows, StateStore

Array = np.ndarray
T = TypeVar("T")

MAX_WAITERS_PER_SESSION = 16


def _digest(raw: Array) -> bytes:
    return hashlib.blake2b(repr(raw.shape).encode() + raw.tobytes(), digest_size=16).digest()


class Engine:
    def __init__(
        self, settings: Settings, registry: Registry, store: StateStore, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self.metrics = metrics
        self.draining = False  # set on SIGTERM: new sessions go to other replicas
        self._pool = ThreadPoolExecutor(settings.ort_pool_size, thread_name_prefix="ort")
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        self._batchers: dict[tuple[str, str], StepBatcher] = {}
        for model in registry.all():
            m = model.manifest
            seconds = metrics.ort_seconds.labels(m.name, m.version)
            batch = metrics.ort_batch.labels(m.name, m.version)
            model.runtime.observe = partial(_observe, seconds.observe, batch.observe)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

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
        return batcher

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, partial(fn, *args))

    async def _acquire(self, session_id: str) -> None:
        """One operation per session at a time, in arrival order; a bounded wait line."""
        lock, waiters = self._locks.get(session_id) or (asyncio.Lock(), [0])
        if waiters[0] >= MAX_WAITERS_PER_SESSION:
            raise Overloaded(
                f"too many concurrent requests for session {session_id}",
                self.settings.limits.retry_after_s,
            )
        self._locks[session_id] = (lock, waiters)
        waiters[0] += 1
        try:
            await lock.acquire()
        except BaseException:
            self._forget(session_id, waiters)
            raise

    def _release(self, session_id: str) -> None:
        lock, waiters = self._locks[session_id]
        lock.release()
        self._forget(session_id, waiters)

    def _forget(self, session_id: str, waiters: list[int]) -> None:
        waiters[0] -= 1
        if waiters[0] == 0:
            del self._locks[session_id]

    @asynccontextmanager
    async def _exclusive(self, session_id: str) -> AsyncIterator[None]:
        await self._acquire(session_id)
        try:
            yield
        finally:
            self._release(session_id)

    # -- inputs ----------------------------------------------------------------------------

    def _check_steps(self, model: LoadedModel, raw: Array, limit: int) -> Array:
        """raw must be [T, F] finite numbers with 1 <= T <= limit."""
        n_feat = model.manifest.n_features
        if raw.ndim != 2 or raw.shape[1] != n_feat or raw.shape[0] == 0:
            raise BadInput(
                f"inputs must be [T][{n_feat}] (T timesteps of {n_feat} features), "
                f"got shape {list(raw.shape)}",
                expected_features=n_feat,
            )
        if raw.shape[0] > limit:
            raise BadInput(
                f"{raw.shape[0]} timesteps exceed the limit of {limit} per request",
                max_timesteps=limit,
            )
        if not np.isfinite(raw).all():
            raise BadInput("inputs contain NaN or Infinity")
        bound = model.transform.max_abs
        if np.abs(raw).max() > bound:
            raise BadInput(f"inputs must lie within ±{bound:.3g} for this model", max_abs=bound)
        return raw

    # -- sessions --------------------------------------------------------------------------

    async def get_session(self, session_id: str, owner: str | None) -> Session:
        session = await self.store.get(session_id)
        if owner is not None and session.owner != owner:
            raise NotFound(f"no session {session_id}", session_id=session_id)
        return session

    def _ttls(self, idle_ttl_s: float | None, ttl_s: float | None) -> tuple[float, float]:
        s = self.settings.sessions
        idle = s.idle_ttl_s if idle_ttl_s is None else idle_ttl_s
        total = s.ttl_s if ttl_s is None else ttl_s
        if not 0 < idle <= s.max_idle_ttl_s or not 0 < total <= s.max_ttl_s:
            raise BadInput(
                f"idle_ttl_s must be in (0, {s.max_idle_ttl_s}] and ttl_s in (0, {s.max_ttl_s}]",
                max_idle_ttl_s=s.max_idle_ttl_s,
                max_ttl_s=s.max_ttl_s,
            )
        return idle, total

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
        idle, total = self._ttls(idle_ttl_s, ttl_s)
        step, rows = 0, None
        if state is not None:
            step, rows = decode_state(state, loaded.state_names, loaded.layout)
            limit = loaded.transform.max_abs
            if max(np.abs(rows.prev_x).max(), np.abs(rows.last_y).max()) > limit:
                raise BadInput(f"state.prev_x and state.last_y must lie within ±{limit:.3g}")
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
        async with self._exclusive(session_id):
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

    async def list_sessions(self, owner: str | None) -> list[Session]:
        return await self.store.sessions_of(owner)

    async def step(
        self, session_id: str, owner: str | None, raw: Array, expected: int | None
    ) -> StepResult:
        await self._acquire(session_id)
        handed_over = False
        try:
            # one read, under the lock: with Redis each read is a round trip
            session = await self.get_session(session_id, owner)
            model = self.registry.get(session.model, session.version)
            raw = self._check_steps(model, raw, self.settings.limits.max_steps_per_request)
            digest = _digest(raw)
            if expected is not None and expected != session.step:
                return self._replay(session, expected, digest)
            future = self._batcher(model).submit(StepJob(session, raw, digest))
            # the session stays locked until its step is committed, even if this request
            # is cancelled meanwhile (a client that went away): no second step can overtake it
            future.add_done_callback(lambda _: self._release(session_id))
            handed_over = True
            try:
                result = await asyncio.shield(future)
            except StepConflict:
                if expected is None:
                    raise
                # another replica committed this index first: answer as its retry is answered
                return self._replay(await self.get_session(session_id, owner), expected, digest)
        finally:
            if not handed_over:
                self._release(session_id)
        self.metrics.steps.labels(session.model).inc(raw.shape[0])
        return result

    def _replay(self, session: Session, expected: int, digest: bytes) -> StepResult:
        last = session.replay
        if last is not None and last.start == expected:
            if last.digest != digest:
                raise StepConflict(
                    f"step {expected} was already applied with different inputs",
                    current_step=session.step,
                )
            self.metrics.replays.inc()
            return StepResult(last.outputs, session.step, replayed=True)
        raise StepConflict(
            f"request expects step {expected} but the session is at step {session.step}",
            current_step=session.step,
            expected_step=expected,
        )

    async def forecast(self, session_id: str, owner: str | None, horizon: int) -> tuple[Array, int]:
        """[horizon, O] predictions from the session's state, and its (unchanged) step."""
        model, state, step = await self._forecast_start(session_id, owner, horizon)
        return (await self._run(rollout, model, state, horizon))[0], step

    async def forecast_stream(
        self, session_id: str, owner: str | None, horizon: int
    ) -> tuple[int, AsyncIterator[Array]]:
        """Validate now, then compute the forecast one step at a time as it is consumed:
        a consumer that stops (a client that went away) stops the computation."""
        model, state, step = await self._forecast_start(session_id, owner, horizon)

        async def rows() -> AsyncIterator[Array]:
            current = state
            yield current.last_y[0]
            for _ in range(1, horizon):
                current = await self._run(forecast_step, model, current)
                yield current.last_y[0]

        return step, rows()

    async def _forecast_start(
        self, session_id: str, owner: str | None, horizon: int
    ) -> tuple[LoadedModel, StateRows, int]:
        session = await self.get_session(session_id, owner)
        model = self.registry.get(session.model, session.version)
        self._check_forecast(model, horizon)
        if session.step == 0:
            raise Conflict(
                "the session has no input yet: step it at least once before forecasting",
                current_step=0,
            )
        state = await self.store.load([session], model.layout)
        session.last_used = time.time()
        await self.store.touch(session)
        return model, state, session.step

    def _check_forecast(self, model: LoadedModel, horizon: int) -> None:
        m = model.manifest
        if not m.forecastable:
            raise BadInput(
                f"model {m.name!r} does not offer forecasts: its outputs do not map to its inputs"
            )
        limit = self.settings.limits.max_horizon
        if not 1 <= horizon <= limit:
            raise BadInput(f"horizon must be in [1, {limit}]", max_horizon=limit)

    async def reset(self, session_id: str, owner: str | None) -> Session:
        async with self._exclusive(session_id):
            session = await self.get_session(session_id, owner)
            model = self.registry.get(session.model, session.version)
            expected = session.step
            session.step, session.replay, session.last_used = 0, None, time.time()
            zeros = model.layout.zeros(1)
            error = (await self.store.save([session], model.layout, zeros, [expected]))[0]
            if error is not None:
                raise error
        return session

    async def fork(self, session_id: str, owner: str | None) -> Session:
        """A new session (same owner, model version and TTLs) with a copy of the state."""
        parent = await self.get_session(session_id, owner)
        doc = await self.export_state(session_id, owner)
        return await self.create_session(
            owner, None, idle_ttl_s=parent.idle_ttl_s, ttl_s=parent.ttl_s, state=doc
        )

    async def export_state(self, session_id: str, owner: str | None) -> dict[str, Any]:
        session = await self.get_session(session_id, owner)
        model = self.registry.get(session.model, session.version)
        rows = await self.store.load([session], model.layout)
        return encode_state(session.model, session.version, session.step, model.state_names, rows)

    async def delete(self, session_id: str, owner: str | None) -> None:
        await self.get_session(session_id, owner)
        await self.store.delete(session_id)
        self.metrics.sessions_deleted.inc()

    # -- stateless ---------------------------------------------------------------------------

    async def predict(
        self, name: str, version: str | None, sequences: list[Array], horizon: int | None
    ) -> tuple[list[Array], list[Array] | None]:
        """Whole sequences [T_i, F] from zero state -> outputs [T_i, O] (+ forecasts)."""
        model = self.registry.get(name, version)
        limits = self.settings.limits
        if not 1 <= len(sequences) <= limits.max_batch:
            raise BadInput(f"give 1 to {limits.max_batch} sequences", max_batch=limits.max_batch)
        total = sum(seq.shape[0] if seq.ndim else 0 for seq in sequences)
        if total > limits.max_predict_steps:
            raise BadInput(
                f"{total} timesteps exceed the predict limit of {limits.max_predict_steps}",
                max_predict_steps=limits.max_predict_steps,
            )
        for seq in sequences:
            self._check_steps(model, seq, limits.max_predict_steps)
        if horizon is not None:
            self._check_forecast(model, horizon)
        groups: dict[int, list[int]] = {}
        for i, seq in enumerate(sequences):
            groups.setdefault(seq.shape[0], []).append(i)
        outputs: list[Array] = [np.empty(0)] * len(sequences)
        forecasts: list[Array] = [np.empty(0)] * len(sequences)
        for idx in groups.values():
            raw = np.stack([sequences[i] for i in idx])
            zeros = model.layout.zeros(len(idx))
            out, state = await self._run(advance, model, raw, zeros, np.zeros(len(idx), bool))
            fc = None if horizon is None else await self._run(rollout, model, state, horizon)
            for j, i in enumerate(idx):
                outputs[i] = out[j]
                if fc is not None:
                    forecasts[i] = fc[j]
        return outputs, (None if horizon is None else forecasts)

    async def run_batch(
        self, name: str, version: str | None, raw: Array, state: list[Array] | None = None
    ) -> tuple[Array, list[Array]]:
        """Stateless: raw [B, T, F] from zero state, or from the given state tensors (float32
        [B, L, H] each, manifest order) -> (outputs [B, T, O], final state tensors [B, L, H])."""
        model = self.registry.get(name, version)
        limits = self.settings.limits
        if raw.ndim != 3 or not 1 <= raw.shape[0] <= limits.max_batch:
            raise BadInput(f"give 1 to {limits.max_batch} sequences", max_batch=limits.max_batch)
        if raw.shape[0] * raw.shape[1] > limits.max_predict_steps:
            raise BadInput(
                f"{raw.shape[0] * raw.shape[1]} timesteps exceed the predict limit of "
                f"{limits.max_predict_steps}",
                max_predict_steps=limits.max_predict_steps,
            )
        for seq in raw:
            self._check_steps(model, seq, limits.max_predict_steps)
        rows = model.layout.zeros(raw.shape[0])
        if state is not None:
            shapes = [list(t.shape) for t in rows.tensors]
            if [list(s.shape) for s in state] != shapes:
                raise BadInput(f"state tensors must have the shapes {shapes} ([B][L][H] each)")
            if not all(np.isfinite(s).all() for s in state):
                raise BadInput("state contains NaN or Infinity")
            rows.tensors = [s.astype(np.float32) for s in state]
        out, new = await self._run(advance, model, raw, rows, np.zeros(raw.shape[0], bool))
        return out, new.tensors


def _observe(
    seconds: Callable[[float], None], batch: Callable[[float], None], elapsed: float, size: int
) -> None:
    seconds(elapsed)
    batch(size)
