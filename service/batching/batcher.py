"""The step batcher: concurrent steps of different sessions of one model version become one
ONNX Runtime call (gather state rows, run, scatter back)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from seqserve.service.batching.assemble import run_groups, select
from seqserve.service.errors import InferenceFailed, Overloaded, SeqServeError
from seqserve.service.runtime.compute import advance
from seqserve.service.runtime.registry import LoadedModel
from seqserve.service.state.store import Replay, Session, StateStore

if TYPE_CHECKING:
    from seqserve.service.metrics import BatchObserver
    from seqserve.service.tracing import Tracing

log = logging.getLogger("seqserve.batcher")
Array = np.ndarray
RunInPool = Callable[..., Awaitable[Any]]
QUIET_PASSES = 3  # event-loop passes without a new step before a batch closes early
_UNTRACED = contextlib.nullcontext()


@dataclass(frozen=True)
class StepResult:
    outputs: Array  # [T, O] float64 in dataset units
    step: int
    replayed: bool


@dataclass
class StepJob:
    session: Session
    raw: Array  # [T, F] float64
    digest: bytes
    future: asyncio.Future[StepResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    queued: float = field(default_factory=time.perf_counter)  # for the queue-wait histogram
    trace: Any = None  # the request's span context when tracing is on (the batch links to it)


class StepBatcher:
    """Collects steps until `max_batch`, or `max_wait_s` after the first, or the event loop
    goes quiet; a `max_wait_s` of 0 turns batching off."""

    def __init__(
        self,
        model: LoadedModel,
        store: StateStore,
        run_in_pool: RunInPool,
        max_batch: int,
        max_wait_s: float,
        max_queue: int,
        retry_after_s: int,
        adaptive: bool = True,
    ) -> None:
        self.model = model
        self.store = store
        self._run_in_pool = run_in_pool
        self.max_batch = max_batch if max_wait_s > 0 else 1
        self.max_wait_s = max_wait_s
        self.adaptive = adaptive
        self.max_queue = max_queue
        self.retry_after_s = retry_after_s
        self._pending: deque[StepJob] = deque()
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: list[StepJob] = []
        self.observer: BatchObserver | None = None  # queue and batch metrics (set by the engine)
        self.tracing: Tracing | None = None

    def depth(self) -> int:
        """Steps waiting for a batch."""
        return len(self._pending)

    def submit(self, job: StepJob) -> asyncio.Future[StepResult]:
        if len(self._pending) >= self.max_queue:
            raise Overloaded("the step queue is full", self.retry_after_s)
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="step-batcher")
        if self.tracing is not None:
            job.trace = self.tracing.current()
        self._pending.append(job)
        self._arrived.set()
        if len(self._pending) >= self.max_batch:
            self._full.set()
        return job.future

    async def drain(self) -> None:
        """Finish every step already submitted, then stop; none may be submitted after."""
        waiting = [job.future for job in (*self._running, *self._pending)]
        if waiting:
            await asyncio.wait(waiting)  # not gather: a cancelled drain must not cancel steps
        await self.close()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for job in self._pending:
            if not job.future.done():
                job.future.set_exception(InferenceFailed("the server is shutting down"))

    async def _loop(self) -> None:
        while True:
            while not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
            await self._fill()
            batch = [
                self._pending.popleft() for _ in range(min(len(self._pending), self.max_batch))
            ]
            self._running = batch
            try:
                await self._observed(batch)
            except Exception as exc:  # e.g. the store failed: fail this batch, keep serving
                error = exc if isinstance(exc, SeqServeError) else InferenceFailed("step failed")
                if not isinstance(exc, SeqServeError):
                    log.exception("step batch failed")
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(error)
            finally:
                self._running = []

    async def _fill(self) -> None:
        """Let more steps join until the batch is full or `max_wait_s` has passed, closing
        early (when adaptive) once the event loop goes quiet (passes that bring no new step):
        a lone stream is not kept waiting for company that is not coming."""
        if len(self._pending) >= self.max_batch:
            return
        if not self.adaptive:
            self._full.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self.max_wait_s)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        quiet = 0
        while len(self._pending) < self.max_batch and quiet < QUIET_PASSES:
            if loop.time() >= deadline:
                return
            before = len(self._pending)
            await asyncio.sleep(0)
            quiet = quiet + 1 if len(self._pending) == before else 0

    async def _observed(self, batch: list[StepJob]) -> None:
        """_execute with the queue/batch metrics and, when on, the batch span around it."""
        observer = self.observer
        if observer is not None:
            now = time.perf_counter()
            for job in batch:
                observer.wait(now - job.queued)
            observer.started()
        try:
            if self.tracing is None:
                await self._execute(batch)
            else:
                m = self.model.manifest
                with self.tracing.batch(m.name, m.version, [job.trace for job in batch]):
                    await self._execute(batch)
        finally:
            if observer is not None:
                observer.finished()

    def _span(self, name: str) -> contextlib.AbstractContextManager[Any]:
        return _UNTRACED if self.tracing is None else self.tracing.child(name)

    async def _execute(self, batch: list[StepJob]) -> None:
        sessions = [job.session for job in batch]
        layout = self.model.layout
        state = await self.store.load(sessions, layout)
        has_prev = np.array([s.step > 0 for s in sessions])
        with self._span("onnxruntime run"):
            results, new_state = await self._run_in_pool(
                run_groups, partial(advance, self.model), [j.raw for j in batch], state, has_prev
            )
        # only the steps whose group ran are committed, each with its own new rows; the store
        # commits or refuses each session whole, so one failure never fails or taints another
        ok = [i for i, r in enumerate(results) if not isinstance(r, BaseException)]
        for i, result in enumerate(results):
            if isinstance(result, BaseException):
                log.error("inference failed for a group of steps", exc_info=result)
                if not batch[i].future.done():
                    batch[i].future.set_exception(InferenceFailed("inference failed for this step"))
        if not ok:
            return
        starts, now = [], time.time()
        for i in ok:
            job, outputs = batch[i], results[i]
            assert isinstance(outputs, np.ndarray)
            s = job.session
            starts.append(s.step)
            s.replay = Replay(s.step, job.digest, outputs)
            s.step += job.raw.shape[0]
            s.last_used = now
        committed = [sessions[i] for i in ok]
        with self._span("store commit"):
            errors = await self.store.save(committed, layout, select(new_state, ok), starts)
        for i, error in zip(ok, errors, strict=True):
            job = batch[i]
            if job.future.done():
                continue
            if error is None:
                assert job.session.replay is not None
                job.future.set_result(
                    StepResult(job.session.replay.outputs, job.session.step, False)
                )
            else:
                job.future.set_exception(error)
