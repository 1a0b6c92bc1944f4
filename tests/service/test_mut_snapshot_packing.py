"""The binary forms that Redis and snapshot files hold, at their edges: bytes that do not fit
are a `PackingError` (which both readers turn into a clear refusal), never a numpy error or a
silently short row; empty replies round-trip; `first_replies` keeps exactly the first few."""

from __future__ import annotations

import numpy as np
import pytest
from seqserve.service.runtime.layout import Layout, StateRows
from seqserve.service.state.packing import (
    PackingError,
    first_replies,
    pack_replay,
    pack_rows,
    unpack_replay,
    unpack_replies,
    unpack_rows,
)
from seqserve.service.state.store import Replay

LAYOUT = Layout(((1, 2), (1, 2)), 2, 2)


def _replies() -> list[Replay]:
    return [
        Replay(9, b"a" * 16, np.full((2, 3), 1.5)),
        Replay(8, b"b" * 16, np.full((1, 3), -2.0)),
        Replay(5, b"c" * 16, np.arange(9.0).reshape(3, 3)),
    ]


def _same(a: list[Replay], b: list[Replay]) -> None:
    assert [(r.start, r.digest, r.outputs.tolist()) for r in a] == [
        (r.start, r.digest, r.outputs.tolist()) for r in b
    ]


def test_a_state_of_another_layout_is_not_packed_into_short_rows() -> None:
    one_tensor = StateRows([np.ones((2, 1, 2), np.float32)], np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="zip"):  # the zip over the layout's parts, strict
        pack_rows(one_tensor, LAYOUT)


@pytest.mark.parametrize("sizes", [[-1], [+1], [-8, +8], [0, -4]])
def test_rows_of_the_wrong_size_are_a_packing_error(sizes: list[int]) -> None:
    """Also when a short and a long row add up to whole rows."""
    good = pack_rows(LAYOUT.zeros(1), LAYOUT)[0]
    assert len(good) == LAYOUT.nbytes
    blobs = [good[:d] if d < 0 else good + bytes(d) for d in sizes]
    with pytest.raises(PackingError, match="state row holds"):
        unpack_rows(blobs, LAYOUT)


@pytest.mark.parametrize("cut", [b"", b"short", bytes(16)])
def test_a_reply_shorter_than_its_head_is_a_packing_error(cut: bytes) -> None:
    with pytest.raises(PackingError, match="truncated"):
        unpack_replay(cut)


@pytest.mark.parametrize("change", [-8, +8])
def test_a_reply_that_does_not_hold_its_outputs_is_a_packing_error(change: int) -> None:
    blob = pack_replay(_replies()[0])
    bad = blob[:change] if change < 0 else blob + bytes(change)
    with pytest.raises(PackingError, match="does not hold 2x3 outputs"):
        unpack_replay(bad)


def test_a_reply_with_no_digest_and_no_outputs_round_trips() -> None:
    """The smallest reply is exactly its head."""
    empty = Replay(4, b"", np.zeros((0, 3)))
    blob = pack_replay(empty)
    assert len(blob) == 17
    _same([unpack_replay(blob)], [empty])
    both = [_replies()[0], empty]
    _same(unpack_replies(b"".join(pack_replay(r) for r in both)), both)


@pytest.mark.parametrize("tail", [1, 5, 16])
def test_replies_followed_by_a_partial_head_are_a_packing_error(tail: int) -> None:
    blob = b"".join(pack_replay(r) for r in _replies()) + bytes(tail)
    with pytest.raises(PackingError, match="truncated"):
        unpack_replies(blob)


def test_first_replies_keeps_exactly_the_first_few() -> None:
    replies = _replies()
    packed = [pack_replay(r) for r in replies]
    blob = b"".join(packed)
    _same(unpack_replies(blob), replies)
    for count in range(4):
        assert first_replies(blob, count) == b"".join(packed[:count])
    assert first_replies(blob, 10) == blob
    assert first_replies(b"", 2) == b""
