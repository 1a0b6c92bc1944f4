"""Snapshots, the gaps the mutation run found: the restart round trip through the app's
lifespan, files that are sealed (a valid checksum) but malformed, sessions that expired while
the server was down, and format-v1 / multi-session layouts of the stored answers."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from seqserve.service.app import create_app
from seqserve.service.runtime.registry import Registry
from seqserve.service.settings import Settings
from seqserve.service.state.memory import MemoryStateStore
from seqserve.service.state.snapshot import MAGIC, SnapshotError, restore_snapshot, write_snapshot
from seqserve.service.state.store import Replay, Session

from tests.service.clock import FakeClock


@pytest.fixture(scope="module")
def registry(repo: Path) -> Registry:
    return Registry.scan(repo)


def _store(depth: int = 1) -> MemoryStateStore:
    return MemoryStateStore(100, 1 << 30, 1, 60.0, replay_depth=depth)


def _app(repo: Path, path: Path) -> TestClient:
    return TestClient(create_app(Settings(model_repository=repo, snapshot_path=path)))


# --- through the app: shutdown writes, the next start restores -------------------------------


def test_a_restart_brings_sessions_back_where_they_were(repo: Path, tmp_path: Path) -> None:
    path = tmp_path / "sessions.snap"
    with _app(repo, path) as first:  # no file yet: a first start restores nothing
        sid = first.post("/v1/sessions", json={"model": "diffed"}).json()["id"]
        stepped = first.post(f"/v1/sessions/{sid}/steps", json={"inputs": [[1.0], [2.0]]})
        assert stepped.json()["step"] == 2
        nxt = first.post(f"/v1/sessions/{sid}/forecast", json={"horizon": 2}).json()
    assert path.exists()  # written at shutdown
    with _app(repo, path) as second:
        got = second.get(f"/v1/sessions/{sid}")
        assert got.status_code == 200, got.text
        assert got.json()["step"] == 2
        again = second.post(f"/v1/sessions/{sid}/forecast", json={"horizon": 2}).json()
        np.testing.assert_allclose(again["forecast"], nxt["forecast"], rtol=0, atol=1e-9)
        resent = second.post(
            f"/v1/sessions/{sid}/steps", json={"inputs": [[1.0], [2.0]], "step": 0}
        )
        assert resent.status_code == 200  # the stored answer survived too
        assert resent.json()["step"] == 2
    assert path.with_name("sessions.snap.restored").exists()


def test_a_snapshot_that_cannot_be_read_stops_the_start_and_says_so(
    repo: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    corrupt = tmp_path / "corrupt.snap"
    corrupt.write_bytes(MAGIC + b"\0" * 64)
    unreadable = tmp_path / "dir.snap"
    unreadable.mkdir()  # exists, but reading it is an OSError
    for path, error in ((corrupt, SnapshotError), (unreadable, OSError)):
        caplog.clear()
        with caplog.at_level(logging.ERROR, "seqserve.snapshot"), pytest.raises(error):
            _app(repo, path).__enter__()
        assert "refusing to start" in caplog.text
        assert "move the file aside" in caplog.text
    assert corrupt.read_bytes() == MAGIC + b"\0" * 64  # left for the operator


def test_a_snapshot_that_cannot_be_written_does_not_break_the_shutdown(
    repo: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "missing-dir" / "sessions.snap"
    with caplog.at_level(logging.ERROR, "seqserve.snapshot"), _app(repo, path) as client:
        assert client.post("/v1/sessions", json={"model": "diffed"}).status_code == 201
    assert "could not write the snapshot" in caplog.text
    assert not path.exists()


# --- sealed but malformed files -------------------------------------------------------------


def _seal(body: bytes) -> bytes:
    return body + hashlib.sha256(body).digest()


def _split(data: bytes) -> tuple[dict[str, Any], bytes]:
    """A snapshot file -> (its header, the blobs after it)."""
    body = data[:-32]
    at = len(MAGIC) + 8
    size = int.from_bytes(body[len(MAGIC) : at], "little")
    return json.loads(body[at : at + size]), body[at + size :]


def _join(header: Any, blobs: bytes, raw_header: bytes | None = None) -> bytes:
    head = raw_header if raw_header is not None else json.dumps(header).encode()
    return _seal(MAGIC + len(head).to_bytes(8, "little") + head + blobs)


def _stepped(store: MemoryStateStore, registry: Registry, answers: int, owner: str) -> str:
    """A session of `multi` committed `answers` times (answers of 1 and 2 timesteps)."""
    layout = registry.get("multi", "1").layout
    now = time.time()
    s = Session("", "multi", "1", owner, 0, now, now, 60, 600)
    asyncio.run(store.create(s, layout, None))
    for k in range(answers):
        got = asyncio.run(store.get(s.id))
        length = 1 + k % 2
        outputs = np.full((length, layout.n_outputs), k)
        before, got.replay = got.step, Replay(got.step, bytes([k]) * 16, outputs)
        got.step += length
        rows = layout.zeros(1)
        rows.tensors[0][:] = k
        assert asyncio.run(store.save([got], layout, rows, [before])) == [None]
    return s.id


def _replies(store: MemoryStateStore, sid: str) -> list[tuple[int, bytes, list[Any]]]:
    got = asyncio.run(store.get(sid))
    return [(r.start, r.digest, r.outputs.tolist()) for r in asyncio.run(store.replies(got))]


def _two_sessions(registry: Registry, path: Path, depth: int) -> tuple[MemoryStateStore, list[str]]:
    source = _store(depth)
    sids = [_stepped(source, registry, n, owner) for n, owner in ((5, "a"), (4, "b"))]
    assert asyncio.run(write_snapshot(path, source, registry)) == 2
    return source, sids


def _refused(path: Path, registry: Registry, data: bytes, match: str) -> None:
    path.write_bytes(data)
    target = _store()
    with pytest.raises(SnapshotError, match=match):
        asyncio.run(restore_snapshot(path, target, registry))
    assert target.stats() == (0, 0)
    assert path.read_bytes() == data


def test_every_session_keeps_its_own_stored_answers(registry: Registry, tmp_path: Path) -> None:
    path = tmp_path / "s.snap"
    source, sids = _two_sessions(registry, path, depth=4)
    target = _store(4)
    assert asyncio.run(restore_snapshot(path, target, registry)) == 2
    for sid in sids:
        assert len(_replies(source, sid)) == 4
        assert _replies(target, sid) == _replies(source, sid)


def test_a_version_1_file_of_several_sessions_loads(registry: Registry, tmp_path: Path) -> None:
    path = tmp_path / "s.snap"
    source, sids = _two_sessions(registry, path, depth=1)
    header, blobs = _split(path.read_bytes())
    header["format"] = "seqserve.snapshot/v1"
    for entry in header["sessions"]:
        assert entry.pop("older") == 0
    path.write_bytes(_join(header, blobs))
    target = _store()
    assert asyncio.run(restore_snapshot(path, target, registry)) == 2
    for sid in sids:
        assert _replies(target, sid) == _replies(source, sid)


def test_an_empty_snapshot_round_trips(registry: Registry, tmp_path: Path) -> None:
    path = tmp_path / "s.snap"
    assert asyncio.run(write_snapshot(path, _store(), registry)) == 0
    assert asyncio.run(restore_snapshot(path, _store(), registry)) == 0
    assert path.with_name("s.snap.restored").exists()


@pytest.mark.parametrize("fill", [0x00, 0xFF])
def test_any_wrong_checksum_is_refused(registry: Registry, tmp_path: Path, fill: int) -> None:
    path = tmp_path / "s.snap"
    _two_sessions(registry, path, depth=1)
    data = path.read_bytes()
    _refused(path, registry, data[:-32] + bytes([fill]) * 32, "checksum")


@pytest.mark.parametrize("extra", range(9))
def test_a_sealed_file_too_short_for_a_header_is_truncated(
    registry: Registry, tmp_path: Path, extra: int
) -> None:
    """MAGIC, `extra` bytes of the 8-byte header length, a valid checksum: below the full
    length field the file is truncated; with all 8 bytes (a zero length) its header is bad."""
    data = _seal(MAGIC + bytes(extra))
    match = "truncated" if extra < 8 else "malformed"
    _refused(tmp_path / "s.snap", registry, data, match)


def _edited(path: Path, edit: Any) -> bytes:
    header, blobs = _split(path.read_bytes())
    return _join(*edit(header, blobs))


def _drop(key: str) -> Any:
    return lambda h, b: ({k: v for k, v in h.items() if k != key}, b)


def _first_reply_size(size: int) -> Any:
    def edit(h: dict[str, Any], b: bytes) -> tuple[Any, bytes]:
        h["sessions"][0]["replay"] = size  # a 3-byte reply: too short for its own head
        return h, b

    return edit


def _last_older_plus(n: int) -> Any:
    def edit(h: dict[str, Any], b: bytes) -> tuple[Any, bytes]:
        h["sessions"][-1]["older"] += n  # claims bytes the file does not have
        return h, b

    return edit


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (lambda p: _join(None, b"", raw_header=b"{not json"), "malformed"),
        (lambda p: _edited(p, _drop("sessions")), "malformed"),
        (lambda p: _edited(p, lambda h, b: ({**h, "sessions": [5]}, b)), "malformed"),
        (lambda p: _edited(p, _first_reply_size(3)), "malformed"),
        (lambda p: _edited(p, lambda h, b: (h, b + b"\0" * 8)), "sizes disagree"),
        (lambda p: _edited(p, _last_older_plus(10)), "sizes disagree"),
        (lambda p: _edited(p, lambda h, b: ({**h, "models": []}, b)), "malformed"),
        (lambda p: _edited(p, lambda h, b: ({**h, "sessions": [[]]}, b)), "malformed"),
    ],
    ids=[
        *("not-json", "no-sessions", "session-not-a-dict", "bad-reply", "trailing", "short"),
        *("models-not-a-dict", "session-a-list"),
    ],
)
def test_a_sealed_but_malformed_snapshot_is_refused_whole(
    registry: Registry, tmp_path: Path, data: Any, match: str
) -> None:
    path = tmp_path / "s.snap"
    _two_sessions(registry, path, depth=1)
    _refused(path, registry, data(path), match)


def test_a_snapshot_of_a_model_with_another_hash_is_refused(
    registry: Registry, tmp_path: Path
) -> None:
    path = tmp_path / "s.snap"
    _two_sessions(registry, path, depth=1)
    for forged in ("0" * 64, "f" * 64):  # below and above the real hash
        header, blobs = _split(path.read_bytes())
        header["models"]["multi/1"]["sha256"] = forged
        _refused(path, registry, _join(header, blobs), "multi/1 changed since the snapshot")


@pytest.mark.parametrize("down_s", [60.0, 61.0, 3600.0])
def test_sessions_that_expired_while_the_server_was_down_are_not_restored(
    registry: Registry, tmp_path: Path, clock: FakeClock, down_s: float
) -> None:
    """Idle TTL 60 s; at exactly 60 s the store itself calls a session expired."""
    path = tmp_path / "s.snap"
    source = _store()
    layout = registry.get("diffed", "2").layout
    now = clock.now
    for sid, idle in (("short", 60), ("long", 7200)):
        s = Session(sid, "diffed", "2", None, 0, now, now, idle, 10_000)
        asyncio.run(source.create(s, layout, None))
    asyncio.run(write_snapshot(path, source, registry))
    clock.advance(down_s)
    target = _store()
    assert asyncio.run(restore_snapshot(path, target, registry)) == 1
    assert [s.id for s in asyncio.run(target.sessions_of(None))] == ["long"]
