"""Edges of the memory store's parts (slab, session table, state codec) that mutation testing
found unpinned: shape checks, growth, id spelling, owner matching, state-document validation."""

from __future__ import annotations

import base64
import secrets
from typing import Any

import numpy as np
import pytest
from seqserve.service.errors import BadInput
from seqserve.service.runtime.layout import Layout, StateRows
from seqserve.service.state.codec import decode_state, encode_state, state_target
from seqserve.service.state.slab import Slab, fits
from seqserve.service.state.store import Replay
from seqserve.service.state.table import SessionTable, decode_id, encode_id, unfit

LAYOUT = Layout(((1, 4), (2, 4)), 3, 2)
NAMES = ["h0", "c0"]


def _rows(batch: int, seed: int = 0) -> StateRows:
    rows = LAYOUT.zeros(batch)
    rng = np.random.default_rng(seed)
    for t in rows.tensors:
        t[:] = rng.normal(size=t.shape)
    rows.prev_x[:] = rng.normal(size=rows.prev_x.shape)
    rows.last_y[:] = rng.normal(size=rows.last_y.shape)
    return rows


# -- slab ------------------------------------------------------------------------------------


def _reshaped(which: str, rows: int) -> StateRows:
    """Batch-2 rows of LAYOUT with one array's batch axis changed to `rows`."""
    s = LAYOUT.zeros(2)
    if which == "tensor":
        s.tensors[1] = np.zeros((rows, 2, 4), np.float32)
    elif which == "prev_x":
        s.prev_x = np.zeros((rows, 3))
    else:
        s.last_y = np.zeros((rows, 2))
    return s


@pytest.mark.parametrize("which", ["tensor", "prev_x", "last_y"])
@pytest.mark.parametrize("rows", [1, 3])
def test_fits_refuses_one_array_with_too_few_or_too_many_rows(which: str, rows: int) -> None:
    assert fits(LAYOUT, LAYOUT.zeros(2), 2)
    assert not fits(LAYOUT, _reshaped(which, rows), 2)


def test_slab_grows_repeatedly_and_hands_out_every_row_once() -> None:
    slab = Slab(LAYOUT, capacity=1)
    rows = [slab.alloc() for _ in range(8)]
    assert sorted(rows) == list(range(8))
    assert slab.capacity == 8
    assert slab.used == 8
    state = _rows(8, seed=3)
    slab.scatter(rows, state)
    slab.alloc()  # one more growth: every row written before keeps its values
    back = slab.gather(rows)
    for got, want in zip(back.tensors, state.tensors, strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(back.prev_x, state.prev_x)
    np.testing.assert_array_equal(back.last_y, state.last_y)


# -- session table ---------------------------------------------------------------------------


def test_unfit_refuses_a_negative_step() -> None:
    assert unfit(0, None, 2) is None
    assert unfit(-1, None, 2) is not None


def _replay(**kw: Any) -> Replay:
    fields: dict[str, Any] = {"start": 0, "digest": bytes(16), "outputs": np.zeros((1, 2))}
    return Replay(**(fields | kw))


@pytest.mark.parametrize(
    "replay",
    [
        _replay(digest=bytes(15)),
        _replay(digest=bytes(17)),
        _replay(outputs=np.zeros(2)),
        _replay(outputs=np.zeros((1, 2, 1))),
        _replay(outputs=np.zeros((0, 2))),
        _replay(outputs=np.zeros((1, 1))),
        _replay(outputs=np.zeros((1, 3))),
    ],
    ids=["short-digest", "long-digest", "1d", "3d", "empty", "narrow", "wide"],
)
def test_unfit_refuses_each_malformed_stored_reply(replay: Replay) -> None:
    assert unfit(5, _replay(), 2) is None
    assert unfit(5, replay, 2) is not None


def test_ids_without_a_mask_spell_the_slot_in_the_clear() -> None:
    secret = secrets.token_bytes(16)
    sid = encode_id(7, secret)
    raw = base64.urlsafe_b64decode(sid + "=")
    assert raw == (7).to_bytes(4, "big") + secret
    assert decode_id(sid) == (7, secret)


def test_a_table_grows_only_once_every_slot_is_taken() -> None:
    table = SessionTable(capacity=2)
    slots = [table.alloc(None)[0] for _ in range(2)]
    assert sorted(slots) == [0, 1]
    assert table.capacity == 2
    slots += [table.alloc(None)[0] for _ in range(2)]
    assert sorted(slots) == [0, 1, 2, 3]
    assert table.capacity == 4


def test_owners_never_match_sessions_of_no_owner_or_of_another_owner() -> None:
    table = SessionTable()
    owners = [table.owner_index(o) for o in (None, "a", "b", "c")]
    assert owners[0] == -1
    assert owners[1:] == [0, 1, 2]
    assert table.find_owner("stranger") not in owners
    assert table.find_owner("b") == 1


def test_ids_naming_a_slot_past_the_end_or_a_freed_slot_are_unknown() -> None:
    table = SessionTable(capacity=4)
    slot, sid = table.alloc(None)
    mask = decode_id(sid)[0] ^ slot  # type: ignore[index]
    table.free(slot)
    assert table.find(sid) is None
    # a freed slot's secret is zeroed: an id carrying zeros must not match it either
    assert table.find(encode_id(slot, bytes(16), mask)) is None
    for past in (table.capacity, table.capacity + 1, 2**31):
        assert table.find(encode_id(past, bytes(16), mask)) is None


# -- state codec -----------------------------------------------------------------------------


def _doc(step: int = 3, state: StateRows | None = None) -> dict[str, Any]:
    return encode_state("m", "1", step, NAMES, state if state is not None else _rows(1))


def test_exported_tensor_shapes_leave_out_the_batch_axis() -> None:
    doc = _doc()
    assert [doc["tensors"][n]["shape"] for n in NAMES] == [[1, 4], [2, 4]]
    step, state = decode_state(doc, NAMES, LAYOUT)
    assert step == 3


def test_step_zero_is_a_valid_state_document() -> None:
    step, _ = decode_state(_doc(step=0), NAMES, LAYOUT)
    assert step == 0


@pytest.mark.parametrize("step", [-1, True, "5"], ids=["negative", "bool", "string"])
def test_a_document_with_a_bad_step_is_refused_even_when_its_checksum_agrees(step: Any) -> None:
    with pytest.raises(BadInput, match="state.step"):
        decode_state(_doc(step=step), NAMES, LAYOUT)


def _with(field: str, value: Any) -> StateRows:
    s = _rows(1)
    setattr(s, field, value)
    return s


@pytest.mark.parametrize(
    ("state", "field"),
    [
        (_with("prev_x", np.zeros((1, 4))), "prev_x"),
        (_with("prev_x", np.zeros((1, 2))), "prev_x"),
        (_with("prev_x", np.array([[0.0, np.nan, 0.0]])), "prev_x"),
        (_with("last_y", np.zeros((1, 3))), "last_y"),
        (_with("last_y", np.array([[np.inf, 0.0]])), "last_y"),
    ],
    ids=["prev_x-long", "prev_x-short", "prev_x-nan", "last_y-long", "last_y-inf"],
)
def test_bad_rows_are_refused_by_name_even_when_the_checksum_agrees(
    state: StateRows, field: str
) -> None:
    with pytest.raises(BadInput, match=f"state.{field}"):
        decode_state(_doc(state=state), NAMES, LAYOUT)


def test_rows_that_are_not_numbers_are_bad_input() -> None:
    doc = _doc()
    doc["prev_x"] = {"a": 1}
    with pytest.raises(BadInput, match="state.prev_x"):
        decode_state(doc, NAMES, LAYOUT)


@pytest.mark.parametrize("fmt", ["seqserve.state/v0", "seqserve.state/v2", None])
def test_other_formats_are_refused(fmt: Any) -> None:
    doc = _doc() | {"format": fmt}
    with pytest.raises(BadInput, match="seqserve.state/v1"):
        state_target(doc)
    with pytest.raises(BadInput, match="state.format"):
        decode_state(doc, NAMES, LAYOUT)


def test_a_document_missing_a_tensor_is_bad_input() -> None:
    for name in NAMES:
        doc = _doc()
        del doc["tensors"][name]
        with pytest.raises(BadInput, match="state.tensors"):
            decode_state(doc, NAMES, LAYOUT)


def test_tensor_data_must_be_strict_base64_of_exactly_the_right_length() -> None:
    doc = _doc()
    data = doc["tensors"]["h0"]["data"]
    doc["tensors"]["h0"]["data"] = data[:4] + "!" + data[4:]  # checksum still agrees, decoded
    with pytest.raises(BadInput, match="state.tensors.h0"):
        decode_state(doc, NAMES, LAYOUT)
    doc = _doc()
    raw = base64.b64decode(doc["tensors"]["h0"]["data"]) + bytes(4)
    doc["tensors"]["h0"]["data"] = base64.b64encode(raw).decode()
    with pytest.raises(BadInput, match="state.tensors.h0"):
        decode_state(doc, NAMES, LAYOUT)
