"""The state store interface: session metadata plus per-session recurrent state rows."""

from __future__ import annotations

import abc
import secrets
from dataclasses import dataclass

import numpy as np
from seqserve.service.errors import SeqServeError
from seqserve.service.runtime.layout import Layout, StateRows

Array = np.ndarray


@dataclass(slots=True)
class Replay:
    """An applied step request's answer, kept so that its retry gets the same answer."""

    start: int
    digest: bytes
    outputs: Array  # decoded outputs [T, O], float64


@dataclass(slots=True)
class Session:
    id: str
    model: str
    version: str
    owner: str | None
    step: int
    created_at: float
    last_used: float
    idle_ttl_s: float
    ttl_s: float
    replay: Replay | None = None  # the answer to the last applied request
    slot: int = -1  # table slot in the memory store

    @property
    def expires_at(self) -> float:
        return min(self.created_at + self.ttl_s, self.last_used + self.idle_ttl_s)


def fresh_id() -> str:
    """A random session id: 144 bits, URL-safe."""
    return secrets.token_urlsafe(18)


class StateStore(abc.ABC):
    """Where sessions live. Raises NotFound / Gone / Overloaded / Unavailable (service.errors).

    The contract every store keeps (tests/e2e/replicas/test_store_contract.py runs it on each):
    - get() returns a Session that carries whatever load() and save() need from that read
      (the memory store: its slot; Redis: the state row and revision read with it). Pass that
      object on, its step/replay/last_used updated; a store keeps nothing about it between
      calls. load() and save() also take a Session that get() did not return (e.g. one built
      by create()), at the cost of a round trip or a weaker check.
    - save() is the only way state and step change. A store shared by processes commits a
      session only while its step index is still `expected` and its state the one read
      (compare-and-set), else answers StepConflict with the current step; an in-process store
      may leave that to the engine's per-session lock, which serialises steps in one process.
    - A commit whose reply was lost may be retried by the store: it is applied at most once.
    - Stored answers: a store keeps the answers of a session's last `replay_depth` applied
      requests (replies()). save() with a `replay` that starts at `expected` adds a new answer
      (the oldest beyond the depth is dropped); a `replay` of None (a reset) drops them all.
    - Lifetimes: an expired or evicted id answers Gone (410) for the tombstone TTL, then
      NotFound; a deleted or never-issued id answers NotFound (404); an id the store issued
      before it lost its data (Redis restarted without persistence) answers Gone.
    - A store that cannot take writes (unreachable, full, read-only) raises Unavailable (503
      with Retry-After); delete() and sweep() still free a full store.
    - stats() counts live sessions and their state bytes; delete() and sweep() release both.
    """

    @abc.abstractmethod
    async def create(self, session: Session, layout: Layout, state: StateRows | None) -> None:
        """Admit a new session (429 beyond the caps) with zero or the given state.

        An empty `session.id` asks the store to assign a fresh unguessable id (>= 128 random
        bits), written back to `session.id`; a given id must not name a live session
        (Conflict)."""

    @abc.abstractmethod
    async def get(self, session_id: str) -> Session:
        """The live session, or NotFound (never existed, deleted) / Gone (expired, evicted,
        lost with the store's data). The object returned is what load() and save() take."""

    @abc.abstractmethod
    async def sessions_of(self, owner: str | None, limit: int | None = None) -> list[Session]:
        """Live sessions of `owner` (everyone's when owner is None), at most `limit`."""

    @abc.abstractmethod
    async def load(self, sessions: list[Session], layout: Layout) -> StateRows:
        """The state rows of sessions of one model version, in order (as get() read them)."""

    @abc.abstractmethod
    async def save(
        self, sessions: list[Session], layout: Layout, state: StateRows, expected: list[int]
    ) -> list[SeqServeError | None]:
        """Commit new state rows and each session's updated step/replay/last_used.

        `expected` holds each session's step index before the change: a store shared by
        replicas commits only where it still holds (compare-and-set). Returns, per session,
        None when committed or the error that kept it from committing.
        """

    async def replies(self, session: Session) -> list[Replay]:
        """The stored answers of the session as get() read it, newest first: a retried
        request is answered from the one that starts where it started."""
        return [] if session.replay is None else [session.replay]

    @abc.abstractmethod
    async def touch(self, session: Session) -> None:
        """Persist metadata changes that carry no new state (e.g. last_used)."""

    @abc.abstractmethod
    async def delete(self, session_id: str) -> None:
        """Remove a session; later lookups answer 404."""

    @abc.abstractmethod
    async def sweep(self) -> int:
        """Drop expired sessions; returns how many."""

    @abc.abstractmethod
    def stats(self) -> tuple[int, int]:
        """(live sessions, state bytes held)."""

    async def ping(self) -> None:  # noqa: B027  # optional hook: nothing to check in-process
        """Raise Unavailable when the store cannot serve (readiness)."""

    async def close(self) -> None:  # noqa: B027  # optional hook: nothing to release in-process
        """Release connections at shutdown."""
