"""The Redis state store: sessions shared by every replica, committed by compare-and-set.

The layout and the atomic scripts are in `redis_lua.py`, the shards in `redis_keys.py`, the
routing to nodes (one Redis or a Redis Cluster) in `redis_route.py`. A session's hash
expires by itself (PEXPIRE set to the time left under both TTLs, refreshed on each use); a
tombstone key that outlives it by `tombstone_ttl_s` keeps an expired id answering 410.

A step costs two round trips: get() (one HGETALL: metadata, state row and revision, read
atomically) and the batch's SAVE scripts (one per shard it touches, one pipeline per node),
a compare-and-set on the step index and revision that get() read. get() returns them on the
session (a RedisSession), and load() and save() take them from there: load() needs no third
trip, and nothing about a session is kept between calls.

Fresh session ids end in their shard's epoch (see redis_lua), so after Redis lost its data
they answer 410 rather than 404. Redis refusing writes (maxmemory, a read-only replica) or
a cluster failing over is a 503 with Retry-After; delete and sweep still work on a full
Redis and free its memory.

Caps are split over the shards (each shard admits its share, atomically); a fresh session
whose shard is full is placed in one with room, so the caps hold exactly for server-issued
ids and refuse only when every shard is full. Ids chosen by a caller (V2 sequences) live in
the shard their id hashes to: they may be refused while another shard has room.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from seqserve.service.errors import Gone, NotFound, SeqServeError
from seqserve.service.runtime.layout import Layout, StateRows
from seqserve.service.state import redis_lua
from seqserve.service.state.packing import (
    PackingError,
    first_replies,
    pack_replay,
    pack_rows,
    unpack_replies,
    unpack_rows,
)
from seqserve.service.state.redis_codec import (
    META,
    RedisSession,
    decode_session,
    fresh_parts,
    missing,
    ms,
    reachable,
    refusal,
    save_error,
)
from seqserve.service.state.redis_keys import Shards
from seqserve.service.state.redis_reads import any_master_writable, pipeline, roomiest
from seqserve.service.state.redis_route import Call, ClusterMode, Lua, Router, open_client
from seqserve.service.state.store import Replay, Session, StateStore

_SWEEP_BATCH = 1000
_LIST_BATCH = 500
CREATE, SAVE, TOUCH = Lua(redis_lua.CREATE), Lua(redis_lua.SAVE), Lua(redis_lua.TOUCH)
DELETE, SWEEP, OWN = Lua(redis_lua.DELETE), Lua(redis_lua.SWEEP), Lua(redis_lua.OWN)


class RedisStateStore(StateStore):
    def __init__(
        self,
        url: str,
        prefix: str,
        max_sessions: int,
        max_state_bytes: int,
        retry_after_s: int,
        tombstone_ttl_s: float,
        evict_idle_s: float = 0.0,
        on_expired: Callable[[int], None] = lambda n: None,
        on_evicted: Callable[[int], None] = lambda n: None,
        max_connections: int = 1024,
        cluster: ClusterMode = "auto",
        shards: int = 0,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 500,
        replay_depth: int = 1,
    ) -> None:
        self._depth = replay_depth
        self._url, self._max_connections, self._mode = url, max_connections, cluster
        self._client: Redis | RedisCluster | None = None
        self._shard_count = shards
        self._shards = Shards(prefix, 1, tagged=False)  # until the first call finds the mode
        self._router = Router(wait_replicas, wait_timeout_ms, retry_after_s)
        self._p = prefix
        self._max_sessions = max_sessions
        self._max_bytes = max_state_bytes
        self._retry_after = retry_after_s
        self._tomb_ms = ms(tombstone_ttl_s)
        self._evict_ms = ms(evict_idle_s)
        self._on_expired = on_expired
        self._on_evicted = on_evicted
        self._totals: dict[int, tuple[int, int]] = {}

    async def _redis(self) -> Redis | RedisCluster:
        """The client, opened on first use (a cluster is told from one node by asking it)."""
        if self._client is None:
            with reachable(self._retry_after):
                client = await open_client(self._url, self._max_connections, self._mode)
            if self._client is not None:  # another call opened it meanwhile
                await client.aclose()
                return self._client
            cluster = isinstance(client, RedisCluster)
            count = self._shard_count or (32 if cluster else 1)
            self._shards = Shards(self._p, count, tagged=cluster)
            self._client = client
        return self._client

    async def _run(self, calls: list[Call], wait: bool = False) -> list[Any]:
        client = await self._redis()
        with reachable(self._retry_after):
            return await self._router.run(client, calls, wait)

    async def ping(self) -> None:
        """Reachable and taking writes: DEL is a write a read-only replica refuses, yet one
        that a full Redis still takes (a full store stays ready: deletes free it). On a
        cluster, ready while any master takes writes: one master failing over makes only its
        sessions answer 503, not every replica leave the load balancer."""
        client = await self._redis()
        if not isinstance(client, RedisCluster):
            with reachable(self._retry_after):
                await client.delete(f"{self._p}:probe")
            return
        with reachable(self._retry_after):
            await any_master_writable(client, self._shards, self._retry_after)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def _key(self, session_id: str) -> str:
        return f"{self._shards.base(session_id)}:s:{session_id}"

    def _owner_key(self, owner: str) -> str:
        return f"{self._p}:o:{{{owner}}}"

    def _expiry(self, session: Session, now: float) -> list[Any]:
        """[time left in ms (PEXPIRE), deadline in epoch ms (B:live score)]."""
        return [ms(session.expires_at - now), ms(session.expires_at)]

    async def create(self, session: Session, layout: Layout, state: StateRows | None) -> None:
        await self._redis()
        rows = pack_rows(state if state is not None else layout.zeros(1), layout)
        now = time.time()
        meta = META.pack(session.created_at, session.idle_ttl_s, session.ttl_s)
        replay = pack_replay(session.replay) if session.replay is not None else b""
        evict_before = ms(now) - self._evict_ms if self._evict_ms > 0 else 0
        tail: list[Any] = [layout.nbytes, session.owner or "", session.model, session.version]
        tail += [meta, repr(session.last_used), session.step, rows[0], replay]
        tail += [*self._expiry(session, now), self._tomb_ms, evict_before]
        fresh = session.id == ""
        shard, token = self._shards.draw() if fresh else (self._shards.of(session.id), "")
        for attempt in range(2):
            reply = await self._create_in(shard, session.id, now, token, tail)
            created, evicted, expired, n, nbytes, sid, *why = reply
            self._count(shard, expired, evicted, [n, nbytes])
            if created or not fresh or why[0] == b"exists" or attempt:
                break
            roomy = await self._roomiest(layout.nbytes)  # this shard is full: another?
            if roomy is None:
                break
            shard, token = self._shards.draw(roomy)
        session.id = sid.decode()
        if not created:
            raise refusal(
                why[0], session.id, self._max_sessions, self._max_bytes, self._retry_after
            )
        if session.owner:  # after the session: an index entry never names a session not made
            until = ms(session.created_at + session.ttl_s)
            await self._run([Call(OWN, self._owner_key(session.owner), [ms(now), sid, until])])

    async def _create_in(
        self, shard: int, session_id: str, now: float, token: str, tail: list[Any]
    ) -> list[Any]:
        base = self._shards.bases[shard]
        caps = [self._shards.cap(self._max_sessions, shard)]
        caps.append(self._shards.cap(self._max_bytes, shard))
        args = [base, session_id, ms(now), *caps, *tail, token, fresh_parts()[1]]
        [reply] = await self._run([Call(CREATE, base + ":live", args)], wait=True)
        return cast(list[Any], reply)

    async def _roomiest(self, nbytes: int) -> int | None:
        client = await self._redis()
        with reachable(self._retry_after):
            caps = (self._max_sessions, self._max_bytes)
            return await roomiest(client, self._shards, caps, nbytes)

    def _count(self, shard: int, expired: int, evicted: int, totals: list[Any]) -> None:
        if expired:
            self._on_expired(expired)
        if evicted:
            self._on_evicted(evicted)
        self._totals[shard] = (int(totals[0]), int(totals[1]))

    async def get(self, session_id: str) -> RedisSession:
        client = await self._redis()
        with reachable(self._retry_after):
            # bytes throughout: the client never decodes (decode_responses is off)
            fields = cast(dict[bytes, bytes], await client.hgetall(self._key(session_id)))
            if not fields:
                base = self._shards.base(session_id)
                tomb, epoch = await client.mget(f"{base}:t:{session_id}", f"{base}:epoch")
                raise missing(session_id, tomb, epoch)
        session = decode_session(session_id, fields)
        if session.expires_at <= time.time():
            raise Gone(f"session {session_id} was expired", session_id=session_id, reason="expired")
        return session

    async def sessions_of(self, owner: str | None, limit: int | None = None) -> list[Session]:
        """An owner's sessions from its index (one key); everyone's from every shard."""
        client = await self._redis()
        now = time.time()
        with reachable(self._retry_after):
            if owner is None:
                raw_ids: list[Any] = []
                for base in self._shards.bases:
                    raw_ids += await client.zrangebyscore(f"{base}:live", ms(now), "+inf")
            else:
                raw_ids = await client.zrangebyscore(self._owner_key(owner), ms(now), "+inf")
            ids = sorted(i.decode() if isinstance(i, bytes) else str(i) for i in raw_ids)
            found: list[Session] = []
            gone: list[str] = []
            for at in range(0, len(ids), _LIST_BATCH):
                if limit is not None and len(found) >= limit:
                    break
                chunk = ids[at : at + _LIST_BATCH]
                replies = await self._hgetall_all(client, chunk)
                found += [decode_session(i, f) for i, f in zip(chunk, replies, strict=True) if f]
                gone += [i for i, f in zip(chunk, replies, strict=True) if not f]
            if owner is not None and gone:  # deleted, expired or evicted: drop from the index
                await client.zrem(self._owner_key(owner), *gone)
        live = [s for s in found if (owner is None or s.owner == owner) and s.expires_at > now]
        return live[:limit]

    async def _hgetall_all(self, client: Redis | RedisCluster, ids: list[str]) -> list[Any]:
        async with pipeline(client) as pipe:
            for session_id in ids:
                pipe.hgetall(self._key(session_id))
            return list(await pipe.execute())

    async def load(self, sessions: list[Session], layout: Layout) -> StateRows:
        """Rows in at most one round trip: a row that get() read with the session's current
        step is that step's state (one atomic HGETALL), so it is used as is. A row gone
        meanwhile loads as zeros (save() then refuses it); a lone one raises its 404/410."""
        blobs: list[bytes | None] = [
            s.read_state if isinstance(s, RedisSession) and s.read_step == s.step else None
            for s in sessions
        ]
        uncached = [i for i, blob in enumerate(blobs) if blob is None]
        if uncached:
            client = await self._redis()
            with reachable(self._retry_after):
                async with pipeline(client) as pipe:
                    for i in uncached:
                        pipe.hget(self._key(sessions[i].id), "state")
                    for i, blob in zip(uncached, await pipe.execute(), strict=True):
                        blobs[i] = blob
        if len(sessions) == 1 and blobs[0] is None:
            await self.get(sessions[0].id)
            raise Gone(f"session {sessions[0].id} ended", session_id=sessions[0].id)
        zeros = pack_rows(layout.zeros(1), layout)[0]
        return unpack_rows([b if b is not None else zeros for b in blobs], layout)

    async def save(
        self, sessions: list[Session], layout: Layout, state: StateRows, expected: list[int]
    ) -> list[SeqServeError | None]:
        """One SAVE script per shard in the batch, one pipeline per node (then WAIT)."""
        await self._redis()
        rows = pack_rows(state, layout)
        now = time.time()
        # a tag per call: a retry of this call (its reply lost) recognises its own commit
        tag = secrets.token_bytes(12)
        olders = [self._older(s, e) for s, e in zip(sessions, expected, strict=True)]
        by_shard: dict[int, list[int]] = {}
        for i, session in enumerate(sessions):
            by_shard.setdefault(self._shards.of(session.id), []).append(i)
        calls = []
        for shard, members in by_shard.items():
            base = self._shards.bases[shard]
            args: list[Any] = [base, ms(now), self._tomb_ms, tag]
            for i in members:
                session, before = sessions[i], expected[i]
                replay = pack_replay(session.replay) if session.replay is not None else b""
                args += [session.id, before, session.step, repr(session.last_used), rows[i]]
                args += [replay, *self._expiry(session, now), _read_rev(session, before)]
                args.append(olders[i])
            calls.append(Call(SAVE, base + ":live", args))
        codes: list[Any] = [None] * len(sessions)
        for members, reply in zip(
            by_shard.values(), await self._run(calls, wait=True), strict=True
        ):
            for i, code in zip(members, reply, strict=True):
                codes[i] = code
        epochs = await self._epochs([s.id for s, c in zip(sessions, codes, strict=True) if c == -3])
        for session, row, before, code, older in zip(
            sessions, rows, expected, codes, olders, strict=True
        ):
            if code == -1 and isinstance(session, RedisSession):  # what Redis now holds
                rev = _read_rev(session, before)
                session.read_older = older
                session.read_rev = str(int(rev) + 1).encode() if rev else b""
                session.read_step, session.read_state = session.step, row
                newest = session.replay
                session.read_replay = pack_replay(newest) if newest is not None else b""
        return [
            save_error(s.id, code, epochs.get(s.id))
            for s, code in zip(sessions, codes, strict=True)
        ]

    def _older(self, session: Session, before: int) -> bytes:
        """The `older` field a commit writes: a new answer (one starting at `before`) pushes
        the newest stored one in front of the older ones read with it, up to the depth; no
        answer (a reset) clears them. Without a read at `before` (nothing to build on) the
        window restarts from the new answer alone."""
        replay = session.replay
        if replay is None or self._depth < 2:
            return b""
        read = isinstance(session, RedisSession) and session.read_step == before
        if not read:
            return b""
        assert isinstance(session, RedisSession)
        if replay.start != before:  # the same answer again: the window is unchanged
            return session.read_older
        return first_replies(session.read_replay + session.read_older, self._depth - 1)

    async def replies(self, session: Session) -> list[Replay]:
        """The newest answer, then the older ones read with it, as long as each ends where
        the one after it starts (a hash written by an older replica that kept no window may
        hold a stale `older` field: it is not trusted past the first break)."""
        if session.replay is None:
            return []
        out = [session.replay]
        if isinstance(session, RedisSession) and session.read_older:
            try:
                older = unpack_replies(session.read_older)
            except PackingError:
                older = []
            for reply in older[: self._depth - 1]:
                if reply.start + reply.outputs.shape[0] != out[-1].start:
                    break
                out.append(reply)
        return out

    async def _epochs(self, ids: list[str]) -> dict[str, bytes | None]:
        """The epoch of each id's shard (only asked for when a session vanished)."""
        client = await self._redis()
        with reachable(self._retry_after):
            return {
                i: cast(bytes | None, await client.get(self._shards.base(i) + ":epoch"))
                for i in ids
            }

    async def touch(self, session: Session) -> None:
        now = time.time()
        await self._redis()
        base = self._shards.base(session.id)
        args: list[Any] = [base, ms(now), self._tomb_ms, session.id, repr(session.last_used)]
        await self._run([Call(TOUCH, base + ":live", [*args, *self._expiry(session, now)])])

    async def delete(self, session_id: str) -> None:
        await self._redis()
        shard = self._shards.of(session_id)
        base = self._shards.bases[shard]
        [reply] = await self._run([Call(DELETE, base + ":live", [base, session_id])])
        found, n, nbytes, owner = reply
        self._totals[shard] = (int(n), int(nbytes))
        if not found:
            raise NotFound(f"no session {session_id}", session_id=session_id)
        if owner:  # the owner's index, in another slot: the next listing would drop it anyway
            client = await self._redis()
            with reachable(self._retry_after):
                await client.zrem(self._owner_key(owner.decode()), session_id)

    async def sweep(self) -> int:
        await self._redis()
        total, todo = 0, list(range(self._shards.count))
        while todo:
            now = ms(time.time())
            calls = [Call(SWEEP, f"{b}:live", [b, now, _SWEEP_BATCH]) for b in self._bases(todo)]
            replies = await self._run(calls)
            for shard, reply in zip(todo, replies, strict=True):
                self._count(shard, int(reply[0]), 0, reply[1:])
                total += int(reply[0])
            todo = [k for k, reply in zip(todo, replies, strict=True) if reply[0] >= _SWEEP_BATCH]
        return total

    def _bases(self, shards: list[int]) -> list[str]:
        return [self._shards.bases[k] for k in shards]

    def stats(self) -> tuple[int, int]:
        """Shared totals, summed over shards, each as of this replica's last create, delete or
        sweep that touched it (a sweep touches all)."""
        counts = list(self._totals.values())
        return sum(n for n, _ in counts), sum(b for _, b in counts)


def _read_rev(session: Session, before: int) -> bytes:
    """The revision to compare and set on: the one get() read, if read at step `before`;
    else b"" (the step index alone is compared)."""
    if isinstance(session, RedisSession) and session.read_step == before:
        return session.read_rev
    return b""
