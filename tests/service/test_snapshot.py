"""Memory-store snapshots: exact round trips, and refusal (nothing loaded) of a snapshot that
is corrupt, truncated, for other models, or over the caps. Plus the binary row forms."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from seqserve.service.runtime.layout import Layout, StateRows
from seqserve.service.runtime.registry import Registry
from seqserve.service.state.memory import MemoryStateStore
from seqserve.service.state.packing import pack_replay, pack_rows, unpack_replay, unpack_rows
from seqserve.service.state.snapshot import (
    MAGIC,
    SnapshotError,
    restore_snapshot,
    write_snapshot,
)
from seqserve.service.state.store import Replay, Session


def _store(max_sessions: int = 100) -> MemoryStateStore:
    return MemoryStateStore(max_sessions, 1 << 30, 1, 60.0)


def _random_rows(layout: Layout, seed: int) -> StateRows:
    rng = np.random.default_rng(seed)
    rows = layout.zeros(1)
    for t in rows.tensors:
        t[:] = rng.normal(size=t.shape)
    rows.prev_x[:] = rng.normal(size=rows.prev_x.shape)
    rows.last_y[:] = rng.normal(size=rows.last_y.shape)
    return rows


@pytest.fixture(scope="module")
def registry(repo: Path) -> Registry:
    return Registry.scan(repo)


def _fill(store: MemoryStateStore, registry: Registry) -> dict[str, StateRows]:
    """Sessions of three model versions (two layouts), some with a stored reply."""
    written = {}
    now = time.time()
    for k, (name, version) in enumerate([("diffed", "1"), ("diffed", "2"), ("multi", "1")] * 2):
        layout = registry.get(name, version).layout
        s = Session(f"s{k}", name, version, "owner" if k % 2 else None, 3 * k, now, now, 60, 600)
        if k % 2:
            s.replay = Replay(3 * k - 3, bytes([k]) * 16, np.full((3, layout.n_outputs), k / 7))
        written[s.id] = _random_rows(layout, k)
        asyncio.run(store.create(s, layout, written[s.id]))
    return written


def test_write_then_restore_gives_back_every_session_exactly(
    registry: Registry, tmp_path: Path
) -> None:
    path = tmp_path / "sessions.snap"
    source = _store()
    written = _fill(source, registry)
    assert asyncio.run(write_snapshot(path, source, registry)) == 6
    target = _store()
    assert asyncio.run(restore_snapshot(path, target, registry)) == 6
    assert not path.exists()  # consumed: a later crash cannot bring back stale sessions
    assert path.with_name("sessions.snap.restored").exists()
    for before in asyncio.run(source.sessions_of(None)):
        after = asyncio.run(target.get(before.id))
        for field in ("model", "version", "owner", "step", "created_at", "last_used", "ttl_s"):
            assert getattr(after, field) == getattr(before, field)
        assert (after.replay is None) == (before.replay is None)
        if before.replay is not None and after.replay is not None:
            assert after.replay.digest == before.replay.digest
            np.testing.assert_array_equal(after.replay.outputs, before.replay.outputs)
        layout = registry.get(after.model, after.version).layout
        rows = asyncio.run(target.load([after], layout))
        for got, want in zip(rows.tensors, written[before.id].tensors, strict=True):
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(rows.last_y, written[before.id].last_y)


def _snapshot(registry: Registry, tmp_path: Path) -> Path:
    path = tmp_path / "sessions.snap"
    source = _store()
    _fill(source, registry)
    asyncio.run(write_snapshot(path, source, registry))
    return path


def _refused(path: Path, registry: Registry, store: MemoryStateStore, match: str) -> None:
    before = path.read_bytes()
    with pytest.raises(SnapshotError, match=match):
        asyncio.run(restore_snapshot(path, store, registry))
    assert store.stats() == (0, 0)  # never half-loaded
    assert path.read_bytes() == before  # left in place for the operator


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:], "checksum"),
        (lambda b: b[:-10], "checksum"),
        (lambda b: b"not a snapshot at all" + b, "magic"),
    ],
)
def test_a_corrupt_snapshot_is_refused_whole(
    registry: Registry, tmp_path: Path, damage: Callable[[bytes], bytes], match: str
) -> None:
    path = _snapshot(registry, tmp_path)
    path.write_bytes(damage(path.read_bytes()))
    _refused(path, registry, _store(), match)


def test_a_snapshot_for_other_models_is_refused(
    registry: Registry, repo_copy: Path, tmp_path: Path
) -> None:
    path = _snapshot(registry, tmp_path)
    manifest = repo_copy / "multi" / "1" / "model.json"
    doc = json.loads(manifest.read_text())
    (repo_copy / "multi" / "1").rename(repo_copy / "multi" / "7")
    doc["version"] = "7"
    (repo_copy / "multi" / "7" / "model.json").write_text(json.dumps(doc))
    _refused(path, Registry.scan(repo_copy), _store(), "model multi/1 .* not in the repository")


def test_a_changed_model_file_is_refused(registry: Registry, tmp_path: Path) -> None:
    path = _snapshot(registry, tmp_path)
    data = path.read_bytes()
    sha = registry.get("diffed", "2").manifest.sha256.encode()
    forged = data[:-32].replace(sha, b"0" * 64)  # re-sealed: only the model check can tell
    path.write_bytes(forged + hashlib.sha256(forged).digest())
    _refused(path, registry, _store(), "model diffed/2 changed since the snapshot")


def test_a_snapshot_over_the_caps_is_refused(registry: Registry, tmp_path: Path) -> None:
    path = _snapshot(registry, tmp_path)
    _refused(path, registry, _store(max_sessions=4), "session cap")


def test_expired_sessions_are_not_restored(registry: Registry, tmp_path: Path) -> None:
    path = tmp_path / "sessions.snap"
    source = _store()
    layout = registry.get("diffed", "2").layout
    old = time.time() - 100
    asyncio.run(
        source.create(Session("a", "diffed", "2", None, 0, old, old, 200, 99), layout, None)
    )
    asyncio.run(
        source.create(Session("b", "diffed", "2", None, 0, old, old, 200, 999), layout, None)
    )
    asyncio.run(write_snapshot(path, source, registry))
    target = _store()
    assert asyncio.run(restore_snapshot(path, target, registry)) == 1
    assert target.stats()[0] == 1


def test_rows_and_replies_pack_to_exact_bytes() -> None:
    layout = Layout(((2, 5), (1, 3)), 4, 2)
    rng = np.random.default_rng(0)
    state = StateRows(
        [
            rng.normal(size=(3, 2, 5)).astype(np.float32),
            rng.normal(size=(3, 1, 3)).astype(np.float32),
        ],
        rng.normal(size=(3, 4)),
        rng.normal(size=(3, 2)),
    )
    blobs = pack_rows(state, layout)
    assert [len(b) for b in blobs] == [layout.nbytes] * 3
    back = unpack_rows(blobs, layout)
    for a, b in zip(
        [*back.tensors, back.prev_x, back.last_y],
        [*state.tensors, state.prev_x, state.last_y],
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    replay = Replay(41, b"0123456789abcdef", rng.normal(size=(5, 2)))
    again = unpack_replay(pack_replay(replay))
    assert (again.start, again.digest) == (41, replay.digest)
    np.testing.assert_array_equal(again.outputs, replay.outputs)


def _stepped(store: MemoryStateStore, registry: Registry, answers: int) -> str:
    """One session of `multi` committed `answers` times, answers of 1 and 2 timesteps."""
    layout = registry.get("multi", "1").layout
    now = time.time()
    s = Session("", "multi", "1", None, 0, now, now, 60, 600)
    asyncio.run(store.create(s, layout, None))
    for k in range(answers):
        got = asyncio.run(store.get(s.id))
        length = 1 + k % 2
        outputs = np.full((length, layout.n_outputs), k / 3)
        before, got.replay = got.step, Replay(got.step, bytes([k]) * 16, outputs)
        got.step += length
        assert asyncio.run(store.save([got], layout, _random_rows(layout, k), [before])) == [None]
    return s.id


def _replies(store: MemoryStateStore, session_id: str) -> list[tuple[int, bytes, list[Any]]]:
    got = asyncio.run(store.get(session_id))
    return [(r.start, r.digest, r.outputs.tolist()) for r in asyncio.run(store.replies(got))]


def test_a_snapshot_keeps_each_sessions_stored_answers(registry: Registry, tmp_path: Path) -> None:
    path = tmp_path / "sessions.snap"
    source = MemoryStateStore(100, 1 << 30, 1, 60.0, replay_depth=4)
    sid = _stepped(source, registry, 6)
    kept = _replies(source, sid)
    assert [start for start, _, _ in kept] == [7, 6, 4, 3]
    asyncio.run(write_snapshot(path, source, registry))
    target = MemoryStateStore(100, 1 << 30, 1, 60.0, replay_depth=4)
    assert asyncio.run(restore_snapshot(path, target, registry)) == 1
    assert _replies(target, sid) == kept


def test_a_version_1_snapshot_still_loads(registry: Registry, tmp_path: Path) -> None:
    """Format v1 had no `older` sizes: rewrite a depth-1 snapshot as v1 and restore it."""
    path = tmp_path / "sessions.snap"
    source = _store()
    sid = _stepped(source, registry, 3)
    asyncio.run(write_snapshot(path, source, registry))
    data = path.read_bytes()[:-32]
    at = len(MAGIC) + 8
    size = int.from_bytes(data[len(MAGIC) : at], "little")
    header = json.loads(data[at : at + size])
    assert header["format"] == "seqserve.snapshot/v2"
    header["format"] = "seqserve.snapshot/v1"
    for entry in header["sessions"]:
        assert entry.pop("older") == 0
    head = json.dumps(header).encode()
    body = MAGIC + len(head).to_bytes(8, "little") + head + data[at + size :]
    path.write_bytes(body + hashlib.sha256(body).digest())
    target = _store()
    assert asyncio.run(restore_snapshot(path, target, registry)) == 1
    assert _replies(target, sid) == _replies(source, sid)
