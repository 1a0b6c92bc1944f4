"""The in-process state store: metadata in NumPy columns, state rows in per-version slabs."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
from seqserve.service.errors import (
    BadInput,
    Conflict,
    Gone,
    NotFound,
    Overloaded,
    SeqServeError,
    StepConflict,
)
from seqserve.service.runtime.layout import MAX_STEP, Layout, StateRows
from seqserve.service.state.ring import ReplyRings
from seqserve.service.state.slab import Slab, fits
from seqserve.service.state.store import Replay, Session, StateStore
from seqserve.service.state.table import DIGEST_BYTES, SessionTable, unfit

MAX_TOMBSTONES = 100_000
_NO_DIGEST = np.zeros(DIGEST_BYTES, np.uint8)


def _bad_meta(session: Session, layout: Layout) -> BadInput | None:
    why = unfit(session.step, session.replay, layout.n_outputs)
    return None if why is None else BadInput(why, max_step=MAX_STEP)


class MemoryStateStore(StateStore):
    def __init__(
        self,
        max_sessions: int,
        max_state_bytes: int,
        retry_after_s: int,
        tombstone_ttl_s: float,
        evict_idle_s: float = 0.0,
        on_expired: Callable[[int], None] = lambda n: None,
        on_evicted: Callable[[int], None] = lambda n: None,
        clock: Callable[[], float] | None = None,
        replay_depth: int = 1,
    ) -> None:
        self._table = SessionTable()
        self._slabs: dict[int, Slab] = {}  # by model index in the table
        self._long_replies: dict[int, np.ndarray] = {}  # slot -> outputs of a T > 1 request
        # replies before the newest (replay_depth > 1): rings by model index, slot -> ring row
        self._depth = replay_depth
        self._rings: dict[int, ReplyRings] = {}
        self._ring_of: dict[int, int] = {}
        self._tombstones: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._max_sessions = max_sessions
        self._max_bytes = max_state_bytes
        self._retry_after = retry_after_s
        self._tombstone_ttl = tombstone_ttl_s
        self._evict_idle_s = evict_idle_s
        self._on_expired = on_expired
        self._on_evicted = on_evicted
        # wall time, as sessions' created_at/last_used; injectable for tests (None: time.time,
        # looked up per call so that a test's process-wide stand-in applies too)
        self._clock = clock if clock is not None else lambda: time.time()
        self._bytes = 0

    # -- slots <-> sessions ------------------------------------------------------------------

    def _slab_of(self, slot: int) -> Slab:
        return self._slabs[int(self._table.cols["model"][slot])]

    def _session(self, slot: int, session_id: str | None = None) -> Session:
        """The session in `slot`; `session_id` when the caller has it (saves re-encoding it).
        Columns are read with `.item()`: a Python scalar at once, a step's hot path."""
        c = self._table.cols
        model, version = self._table.models[c["model"].item(slot)]
        owner = c["owner"].item(slot)
        step = c["step"].item(slot)
        return Session(
            id=self._table.session_id(slot) if session_id is None else session_id,
            model=model,
            version=version,
            owner=None if owner < 0 else self._table.owners[owner],
            step=step,
            created_at=c["created_at"].item(slot),
            last_used=c["last_used"].item(slot),
            idle_ttl_s=c["idle_ttl_s"].item(slot),
            ttl_s=c["ttl_s"].item(slot),
            slot=slot,
            replay=self._newest(slot),
        )

    def _newest(self, slot: int) -> Replay | None:
        """The slot's stored reply to its last applied request, if any."""
        c = self._table.cols
        length = int(c["replay_len"][slot])
        if not length:
            return None
        outputs = self._long_replies.get(slot)
        if outputs is None:
            outputs = self._slab_of(slot).replies[int(c["row"][slot])][None].copy()
        digest = c["replay_digest"][slot].tobytes()
        return Replay(int(c["step"][slot]) - length, digest, outputs)

    def _keep_older(self, slot: int, session: Session, expected: int) -> None:
        """Before a commit overwrites the newest reply: a new reply (one that starts at the
        step the commit expects) pushes the stored one into the slot's ring; no reply (a
        reset) drops the ring."""
        if session.replay is None:
            self._drop_ring(slot)
            return
        if self._depth < 2 or session.replay.start != expected:
            return
        previous = self._newest(slot)
        if previous is None:
            return
        row = self._ring_of.get(slot)
        if row is None:
            row = self._ring_of[slot] = self._ring(slot).alloc()
        self._ring(slot).push(row, previous.start, previous.digest, previous.outputs)

    def _ring(self, slot: int) -> ReplyRings:
        model = int(self._table.cols["model"][slot])
        ring = self._rings.get(model)
        if ring is None:
            n_outputs = self._slabs[model].layout.n_outputs
            ring = self._rings[model] = ReplyRings(self._depth - 1, n_outputs, DIGEST_BYTES)
        return ring

    def _drop_ring(self, slot: int) -> None:
        row = self._ring_of.pop(slot, None)
        if row is not None:
            self._ring(slot).free(row)

    def _write_meta(self, slot: int, session: Session) -> None:
        c = self._table.cols
        c["step"][slot] = session.step
        c["last_used"][slot] = session.last_used
        replay = session.replay
        self._long_replies.pop(slot, None)
        if replay is None:
            c["replay_len"][slot] = 0
            c["replay_digest"][slot] = _NO_DIGEST
            return
        c["replay_len"][slot] = replay.outputs.shape[0]
        c["replay_digest"][slot] = np.frombuffer(replay.digest, np.uint8)
        if replay.outputs.shape[0] == 1:
            self._slab_of(slot).replies[int(c["row"][slot])] = replay.outputs[0]
        else:
            self._long_replies[slot] = replay.outputs

    def _is_current(self, session: Session) -> bool:
        """Still the live session this object was read from (its slot not reused since, by
        another session or another model version): work queued for a session that ended
        neither reads nor writes whoever holds its slot now."""
        slot, c = session.slot, self._table.cols
        return bool(
            0 <= slot < self._table.capacity
            and c["live"].item(slot)
            and c["created_at"].item(slot) == session.created_at
            and self._table.models[c["model"].item(slot)] == (session.model, session.version)
            and self._table.session_id(slot) == session.id
        )

    def _by_slab(self, sessions: list[Session], layout: Layout) -> dict[int, list[int]]:
        """Indices of the current sessions in `layout`, by the model index of their slab."""
        groups: dict[int, list[int]] = {}
        for i, s in enumerate(sessions):
            if self._is_current(s):
                model = int(self._table.cols["model"][s.slot])
                if self._slabs[model].layout == layout:
                    groups.setdefault(model, []).append(i)
        return groups

    def _refusal(self, session: Session, layout: Layout, expected: int) -> SeqServeError | None:
        """Why one session's commit must not be written; None when it can be."""
        if not self._is_current(session) or self._slab_of(session.slot).layout != layout:
            # deleted, expired or evicted while its step ran: the slot may be another's now
            return Gone(f"session {session.id} ended while its step ran", session_id=session.id)
        current = int(self._table.cols["step"][session.slot])
        if current != expected:
            return StepConflict(
                f"the session moved to step {current} meanwhile", current_step=current
            )
        return _bad_meta(session, layout)

    # -- admission -------------------------------------------------------------------------

    def _over_cap(self, layout: Layout) -> str | None:
        if self._table.count >= self._max_sessions:
            return f"session cap reached ({self._max_sessions} live sessions)"
        if self._bytes + layout.nbytes > self._max_bytes:
            return f"state memory cap reached ({self._max_bytes} bytes)"
        return None

    def _evict_one(self) -> bool:
        """Drop the least recently used session idle for over `evict_idle_s`, if any."""
        if self._evict_idle_s <= 0 or not self._table.count:
            return False
        c = self._table.cols
        last_used = np.where(c["live"], c["last_used"], np.inf)
        slot = int(np.argmin(last_used))
        if self._clock() - last_used[slot] < self._evict_idle_s:
            return False
        self._bury([slot], "evicted")
        self._on_evicted(1)
        return True

    # -- the StateStore interface ------------------------------------------------------------

    async def create(
        self,
        session: Session,
        layout: Layout,
        state: StateRows | None,
        older: Sequence[Replay] = (),
    ) -> None:
        """`older`: replies before `session.replay`, newest first (a restored snapshot)."""
        if session.id and session.id in self._table.named:
            raise Conflict(f"session {session.id} already exists", session_id=session.id)
        # everything is checked before a slot, a row or a byte is taken
        if (bad := _bad_meta(session, layout)) is not None:
            raise bad
        if any(unfit(session.step, reply, layout.n_outputs) for reply in older):
            raise BadInput("a stored reply does not fit the session")
        if state is not None and not fits(layout, state, 1):
            raise BadInput("the initial state does not fit the model's layout")
        while (full := self._over_cap(layout)) and self._evict_one():
            pass
        if full:
            raise Overloaded(
                full,
                self._retry_after,
                max_sessions=self._max_sessions,
                max_state_bytes=self._max_bytes,
            )
        model = self._table.model_index((session.model, session.version))
        slab = self._slabs.setdefault(model, Slab(layout))
        slot, session.id = self._table.alloc(session.id or None)
        session.slot = slot
        c = self._table.cols
        c["model"][slot] = model
        c["owner"][slot] = self._table.owner_index(session.owner)
        c["row"][slot] = row = slab.alloc()
        for key in ("created_at", "idle_ttl_s", "ttl_s"):
            c[key][slot] = getattr(session, key)
        self._write_meta(slot, session)
        if state is not None:
            slab.scatter([row], state)
        self._bytes += layout.nbytes
        kept = list(older)[: self._depth - 1] if session.replay is not None else []
        if kept:
            ring = self._ring(slot)
            self._ring_of[slot] = ring_row = ring.alloc()
            for reply in reversed(kept):
                ring.push(ring_row, reply.start, reply.digest, reply.outputs)

    async def get(self, session_id: str) -> Session:
        slot = self._table.find(session_id)
        if slot is None:
            until, reason = self._tombstones.get(session_id, (0.0, ""))
            if until > self._clock():
                raise Gone(
                    f"session {session_id} was {reason}", session_id=session_id, reason=reason
                )
            raise NotFound(f"no session {session_id}", session_id=session_id)
        session = self._session(slot, session_id)
        if session.expires_at <= self._clock():
            self._bury([slot], "expired")
            self._on_expired(1)
            raise Gone(f"session {session_id} was expired", session_id=session_id, reason="expired")
        return session

    async def sessions_of(self, owner: str | None, limit: int | None = None) -> list[Session]:
        slots = np.flatnonzero(self._live_unexpired(self._clock()))
        if owner is not None:
            index = self._table.find_owner(owner)
            slots = slots[self._table.cols["owner"][slots] == index]
        return [self._session(int(slot)) for slot in slots[:limit]]

    def _rows(self, sessions: list[Session], idx: list[int]) -> list[int]:
        return [int(self._table.cols["row"][sessions[i].slot]) for i in idx]

    async def load(self, sessions: list[Session], layout: Layout) -> StateRows:
        """Each session's rows from its own slab; a session no longer current reads zeros
        (its step will not be saved), never the rows of whoever took its slot."""
        groups = self._by_slab(sessions, layout)
        if len(groups) == 1:
            ((model, idx),) = groups.items()
            if len(idx) == len(sessions):  # the common case: one slab, one gather
                return self._slabs[model].gather(self._rows(sessions, idx))
        out = layout.zeros(len(sessions))
        for model, idx in groups.items():
            rows = self._slabs[model].gather(self._rows(sessions, idx))
            for dst, src in zip(out.tensors, rows.tensors, strict=True):
                dst[idx] = src
            out.prev_x[idx], out.last_y[idx] = rows.prev_x, rows.last_y
        return out

    async def save(
        self, sessions: list[Session], layout: Layout, state: StateRows, expected: list[int]
    ) -> list[SeqServeError | None]:
        """All-or-nothing per session: every session is checked before anything is written,
        and one session's refusal leaves the others' commits whole."""
        errors = [self._refusal(s, layout, e) for s, e in zip(sessions, expected, strict=True)]
        if not fits(layout, state, len(sessions)):
            raise ValueError("state rows do not match the sessions and layout saved")
        groups: dict[int, list[int]] = {}
        for i, error in enumerate(errors):
            if error is None:
                groups.setdefault(int(self._table.cols["model"][sessions[i].slot]), []).append(i)
        for model, idx in groups.items():
            picked = StateRows(
                [t[idx] for t in state.tensors], state.prev_x[idx], state.last_y[idx]
            )
            self._slabs[model].scatter(self._rows(sessions, idx), picked)
            for i in idx:
                self._keep_older(sessions[i].slot, sessions[i], expected[i])
                self._write_meta(sessions[i].slot, sessions[i])
        return errors

    async def replies(self, session: Session) -> list[Replay]:
        if not self._is_current(session):
            return []
        newest = self._newest(session.slot)
        if newest is None:
            return []
        row = self._ring_of.get(session.slot)
        older = [] if row is None else self._ring(session.slot).replies(row)
        return [newest, *older]

    async def touch(self, session: Session) -> None:
        if self._is_current(session):
            self._table.cols["last_used"][session.slot] = session.last_used

    async def delete(self, session_id: str) -> None:
        slot = self._table.find(session_id)
        if slot is None:
            raise NotFound(f"no session {session_id}", session_id=session_id)
        self._release(slot)

    def _release(self, slot: int) -> None:
        slab = self._slab_of(slot)
        slab.free(int(self._table.cols["row"][slot]))
        self._long_replies.pop(slot, None)
        self._drop_ring(slot)
        self._table.free(slot)
        self._bytes -= slab.layout.nbytes

    def _bury(self, slots: list[int], reason: str) -> None:
        until = self._clock() + self._tombstone_ttl
        for slot in slots:
            self._tombstones[self._table.session_id(slot)] = (until, reason)
            self._release(slot)
        while len(self._tombstones) > MAX_TOMBSTONES:
            self._tombstones.popitem(last=False)

    def _live_unexpired(self, now: float) -> np.ndarray:
        c = self._table.cols
        expires = np.minimum(c["created_at"] + c["ttl_s"], c["last_used"] + c["idle_ttl_s"])
        return c["live"] & (expires > now)  # type: ignore[no-any-return]

    async def sweep(self) -> int:
        now = self._clock()
        expired = np.flatnonzero(self._table.cols["live"] & ~self._live_unexpired(now))
        if expired.size:
            self._bury([int(s) for s in expired], "expired")
            self._on_expired(int(expired.size))
        while self._tombstones and next(iter(self._tombstones.values()))[0] <= now:
            self._tombstones.popitem(last=False)
        return int(expired.size)

    def stats(self) -> tuple[int, int]:
        return self._table.count, self._bytes
