"""Snapshots of the memory store: every session written on shutdown, restored at start.

File: `MAGIC`, an 8-byte header length, a JSON header (model versions with their ONNX
SHA-256 and state layout; session metadata), the packed state rows and stored replies (per
session: its row, its newest reply, then, since format v2, its older replies), then the
SHA-256 of everything before it. Format v1 files (no older replies) still load. It is
written to a temporary file and renamed into place, so a crash mid-write leaves the previous
file. A snapshot that is corrupt or does not match the loaded models is refused whole:
nothing is loaded and the server does not start.
After a restore the file is renamed to `<name>.restored`, so a later crash cannot bring back
sessions that have moved on since.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Any

import orjson
from seqserve.service.errors import SeqServeError
from seqserve.service.runtime.layout import Layout, StateRows
from seqserve.service.runtime.registry import Registry
from seqserve.service.state.memory import MemoryStateStore
from seqserve.service.state.packing import (
    PackingError,
    pack_replay,
    pack_rows,
    unpack_replay,
    unpack_replies,
    unpack_rows,
)
from seqserve.service.state.store import Replay, Session, StateStore

log = logging.getLogger("seqserve.snapshot")
MAGIC = b"SEQSERVE-SNAPSHOT/1\n"
FORMAT = "seqserve.snapshot/v2"
READS = ("seqserve.snapshot/v1", FORMAT)  # v1: no older replies
_FIELDS = (
    *("id", "model", "version", "owner", "step"),
    *("created_at", "last_used", "idle_ttl_s", "ttl_s"),
)


class SnapshotError(Exception):
    """A snapshot that cannot be restored; the message says why and what to do."""


async def write_snapshot(path: Path, store: MemoryStateStore, registry: Registry) -> int:
    """Write all live sessions to `path` atomically; returns how many."""
    sessions = await store.sessions_of(None)
    models: dict[str, Any] = {}
    entries: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for session in sessions:
        model = registry.get(session.model, session.version)
        key = f"{session.model}/{session.version}"
        models[key] = {"sha256": model.manifest.sha256, "layout": _layout_doc(model.layout)}
        row = pack_rows(await store.load([session], model.layout), model.layout)[0]
        replies = await store.replies(session)
        packed = pack_replay(replies[0]) if replies else b""
        packed_older = b"".join(pack_replay(r) for r in replies[1:])
        sizes = {"replay": len(packed), "older": len(packed_older)}
        entries.append({**{f: getattr(session, f) for f in _FIELDS}, **sizes})
        blobs += [row, packed, packed_older]
    header = orjson.dumps(
        {"format": FORMAT, "written_at": time.time(), "models": models, "sessions": entries}
    )
    data = MAGIC + len(header).to_bytes(8, "little") + header + b"".join(blobs)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data + hashlib.sha256(data).digest())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return len(sessions)


async def restore_snapshot(path: Path, store: MemoryStateStore, registry: Registry) -> int:
    """Load every unexpired session of the snapshot at `path` into an empty store, or none."""
    restored = _parse(path.read_bytes(), registry)
    now = time.time()
    created: list[str] = []
    try:
        for session, layout, rows, older in restored:
            if session.expires_at > now:
                await store.create(session, layout, rows, older)
                created.append(session.id)
    except SeqServeError as exc:  # e.g. over the caps: undo, load nothing
        for session_id in created:
            await store.delete(session_id)
        raise SnapshotError(f"{exc.detail}; raise the limits or move the file aside") from exc
    os.replace(path, path.with_name(path.name + ".restored"))
    return len(created)


def _layout_doc(layout: Layout) -> dict[str, Any]:
    return {
        "tensor_shapes": [list(s) for s in layout.tensor_shapes],
        "n_features": layout.n_features,
        "n_outputs": layout.n_outputs,
    }


def _parse(
    data: bytes, registry: Registry
) -> list[tuple[Session, Layout, StateRows, list[Replay]]]:
    if not data.startswith(MAGIC):
        raise SnapshotError("not a seqserve snapshot (wrong magic bytes)")
    body, checksum = data[:-32], data[-32:]
    if len(data) < len(MAGIC) + 40 or hashlib.sha256(body).digest() != checksum:
        raise SnapshotError("checksum mismatch: the file is truncated or corrupt")
    at = len(MAGIC) + 8
    size = int.from_bytes(data[len(MAGIC) : at], "little")
    try:
        header = orjson.loads(data[at : at + size])
        if header["format"] not in READS:
            raise SnapshotError(f"format {header['format']!r}, this server reads {READS!r}")
        layouts = {key: _check_model(key, doc, registry) for key, doc in header["models"].items()}
        at += size
        out = []
        for entry in header["sessions"]:
            layout = layouts[f"{entry['model']}/{entry['version']}"]
            row = body[at : at + layout.nbytes]
            at += layout.nbytes
            replay = body[at : at + entry["replay"]]
            at += entry["replay"]
            older = body[at : at + entry.get("older", 0)]
            at += entry.get("older", 0)
            session = Session(**{f: entry[f] for f in _FIELDS})
            session.replay = unpack_replay(replay) if replay else None
            out.append((session, layout, unpack_rows([row], layout), unpack_replies(older)))
    except (AttributeError, KeyError, TypeError, ValueError, PackingError) as exc:
        raise SnapshotError(f"malformed snapshot contents ({exc!r})") from exc
    if at != len(body):
        raise SnapshotError("the snapshot's sizes disagree with its contents")
    return out


def _check_model(key: str, doc: dict[str, Any], registry: Registry) -> Layout:
    name, _, version = key.partition("/")
    try:
        model = registry.get(name, version)
    except SeqServeError:
        raise SnapshotError(f"model {key} of the snapshot is not in the repository") from None
    if model.manifest.sha256 != doc["sha256"]:
        raise SnapshotError(f"model {key} changed since the snapshot (its ONNX SHA-256 differs)")
    if _layout_doc(model.layout) != doc["layout"]:
        raise SnapshotError(f"model {key}'s state layout differs from the snapshot's")
    return model.layout


async def restore_at_start(path: Path | None, store: StateStore, registry: Registry) -> None:
    """Restore `path` if it exists; a snapshot that cannot be restored stops the start."""
    if path is None or not path.exists():
        return
    assert isinstance(store, MemoryStateStore)  # the settings allow snapshots only there
    try:
        count = await restore_snapshot(path, store, registry)
    except (SnapshotError, OSError) as exc:
        log.error(
            "refusing to start: cannot restore the snapshot %s: %s. Nothing was loaded; move "
            "the file aside (or delete it) to start without its sessions",
            path,
            exc,
        )
        raise
    log.info("restored %d sessions from %s", count, path)


async def write_at_shutdown(path: Path | None, store: StateStore, registry: Registry) -> None:
    if path is None:
        return
    assert isinstance(store, MemoryStateStore)
    try:
        count = await write_snapshot(path, store, registry)
    except OSError:
        log.exception("could not write the snapshot %s; its sessions are lost", path)
        return
    log.info("wrote %d sessions to the snapshot %s", count, path)
