"""Compact binary forms of state rows and stored replies, for Redis and snapshot files.

A state row is the layout's tensors as little-endian float32 followed by `prev_x` and
`last_y` as little-endian float64: exactly `Layout.nbytes` bytes. A stored reply is
`<q start><I T><I O><B digest length><digest>` then its outputs `[T, O]` as float64; several
stored replies (a session's older answers) are packed replies back to back, newest first.
No pickle anywhere: the bytes are plain arrays and fixed-width integers.
"""

from __future__ import annotations

import struct

import numpy as np
from seqserve.service.runtime.layout import Layout, StateRows
from seqserve.service.state.store import Replay

Array = np.ndarray
_REPLAY_HEAD = struct.Struct("<qIIB")


class PackingError(ValueError):
    """Bytes that do not fit the layout they are decoded with."""


def _columns(layout: Layout) -> list[tuple[str, int]]:
    """(dtype, values per row) of each part of a row, in order."""
    parts = [("<f4", layers * size) for layers, size in layout.tensor_shapes]
    return [*parts, ("<f8", layout.n_features), ("<f8", layout.n_outputs)]


def pack_rows(state: StateRows, layout: Layout) -> list[bytes]:
    """One `bytes` of `layout.nbytes` per row of `state`."""
    batch = state.prev_x.shape[0]
    arrays = [*state.tensors, state.prev_x, state.last_y]
    flat = [
        np.ascontiguousarray(a, dtype=dtype).reshape(batch, n).view(np.uint8)
        for a, (dtype, n) in zip(arrays, _columns(layout), strict=True)
    ]
    table = np.concatenate(flat, axis=1) if len(flat) > 1 else flat[0]
    return [row.tobytes() for row in table]


def unpack_rows(blobs: list[bytes], layout: Layout) -> StateRows:
    """The inverse of `pack_rows`; every blob must be exactly `layout.nbytes` long."""
    for blob in blobs:
        if len(blob) != layout.nbytes:
            raise PackingError(
                f"a state row holds {len(blob)} bytes, the model's layout needs {layout.nbytes}"
            )
    table = np.frombuffer(b"".join(blobs), np.uint8).reshape(len(blobs), layout.nbytes)
    parts: list[Array] = []
    at = 0
    for dtype, n in _columns(layout):
        width = n * np.dtype(dtype).itemsize
        part = np.ascontiguousarray(table[:, at : at + width]).view(dtype)
        parts.append(part.astype(np.float32 if dtype == "<f4" else np.float64))
        at += width
    *flat, prev_x, last_y = parts
    tensors = [
        t.reshape(len(blobs), layers, size)
        for t, (layers, size) in zip(flat, layout.tensor_shapes, strict=True)
    ]
    return StateRows(tensors, prev_x, last_y)


def pack_replay(replay: Replay) -> bytes:
    outputs = np.ascontiguousarray(replay.outputs, dtype="<f8")
    steps, width = outputs.shape
    head = _REPLAY_HEAD.pack(replay.start, steps, width, len(replay.digest))
    return head + replay.digest + outputs.tobytes()


def unpack_replay(blob: bytes) -> Replay:
    if len(blob) < _REPLAY_HEAD.size:
        raise PackingError("a stored reply is truncated")
    start, steps, width, digest_len = _REPLAY_HEAD.unpack_from(blob)
    at = _REPLAY_HEAD.size + digest_len
    if len(blob) != at + 8 * steps * width:
        raise PackingError(f"a stored reply does not hold {steps}x{width} outputs")
    outputs = np.frombuffer(blob, "<f8", offset=at).astype(np.float64).reshape(steps, width)
    return Replay(start, blob[_REPLAY_HEAD.size : at], outputs)


def _reply_ends(blob: bytes, limit: int) -> list[int]:
    """Where each of the first `limit` packed replies in `blob` ends (headers read only)."""
    ends: list[int] = []
    at = 0
    while at < len(blob) and len(ends) < limit:
        if len(blob) - at < _REPLAY_HEAD.size:
            raise PackingError("a stored reply is truncated")
        _, steps, width, digest_len = _REPLAY_HEAD.unpack_from(blob, at)
        at += _REPLAY_HEAD.size + digest_len + 8 * steps * width
        if at > len(blob):
            raise PackingError("a stored reply is truncated")
        ends.append(at)
    return ends


def first_replies(blob: bytes, count: int) -> bytes:
    """The first `count` packed replies of `blob` (all when it holds fewer)."""
    ends = _reply_ends(blob, count)
    return blob[: ends[-1]] if ends else b""


def unpack_replies(blob: bytes) -> list[Replay]:
    """Packed replies back to back -> Replays, in order."""
    ends = _reply_ends(blob, len(blob))
    return [unpack_replay(blob[a:b]) for a, b in zip([0, *ends], ends, strict=False)]
