"""The state store interface: session metadata plus per-session recurrent state rows."""

from __future__ import annotations

import abc
import secrets
from dataclasses import dataclass

import numpy as np
from seqserve.service.errors import SeqServeError

Array = np.ndarray
MAX_STEP = 2**53 - 1  # the largest step index: every integer the API echoes stays exact in JSON


@dataclass(slots=True)
class Replay:
    """The last applied step request, kept so that its retry gets the same answer."""

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
    replay: Replay | None = None
    slot: int = -1  # table slot in the memory store

    @property
    def expires_at(self) -> float:
        return min(self.created_at + self.ttl_s, self.last_used + self.idle_ttl_s)


@dataclass(slots=True)
class StateRows:
    """Recurrent state of B sessions of one model version."""

    tensors: list[Array]  # one per state pair, float32 [B, L, H]
    prev_x: Array  # last raw input row, float64 [B, F]
    last_y: Array  # last decoded output row, float64 [B, O]

    def take(self, index: int) -> StateRows:
        sl = slice(index, index + 1)
        return StateRows([t[sl] for t in self.tensors], self.prev_x[sl], self.last_y[sl])


@dataclass(frozen=True, slots=True)
class Layout:
    """Shapes of one model version's per-session state."""

    tensor_shapes: tuple[tuple[int, int], ...]  # (layers, hidden) per state pair
    n_features: int
    n_outputs: int

    @property
    def nbytes(self) -> int:
        tensors = sum(4 * layers * size for layers, size in self.tensor_shapes)
        return tensors + 8 * (self.n_features + self.n_outputs)

    def zeros(self, batch: int) -> StateRows:
        return StateRows(
            [np.zeros((batch, layers, size), np.float32) for layers, size in self.tensor_shapes],
            np.zeros((batch, self.n_features), np.float64),
            np.zeros((batch, self.n_outputs), np.float64),
        )


def fresh_id() -> str:
    """A random session id: 144 bits, URL-safe."""
    return secrets.token_urlsafe(18)


class StateStore(abc.ABC):
    """Where sessions live. Raises NotFound / Gone / Overloaded from service.errors."""

    @abc.abstractmethod
    async def create(self, session: Session, layout: Layout, state: StateRows | None) -> None:
        """Admit a new session (429 beyond the caps) with zero or the given state.

        An empty `session.id` asks the store to assign a fresh unguessable id (>= 128 random
        bits); a given id must not name a live session (Conflict)."""

    @abc.abstractmethod
    async def get(self, session_id: str) -> Session:
        """The live session, or NotFound (never existed, deleted) / Gone (expired)."""

    @abc.abstractmethod
    async def sessions_of(self, owner: str | None, limit: int | None = None) -> list[Session]:
        """Live sessions of `owner` (everyone's when owner is None), at most `limit`."""

    @abc.abstractmethod
    async def load(self, sessions: list[Session], layout: Layout) -> StateRows:
        """The state rows of sessions of one model version, in order."""

    @abc.abstractmethod
    async def save(
        self, sessions: list[Session], layout: Layout, state: StateRows, expected: list[int]
    ) -> list[SeqServeError | None]:
        """Commit new state rows and each session's updated step/replay/last_used.

        `expected` holds each session's step index before the change: a store shared by
        replicas commits only where it still holds (compare-and-set). Returns, per session,
        None when committed or the error that kept it from committing.
        """

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
