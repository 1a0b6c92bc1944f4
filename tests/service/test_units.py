"""Pure parts without HTTP: preprocessing, slabs, the state codec."""

from __future__ import annotations

import numpy as np
import pytest
from seqserve.service.errors import BadInput
from seqserve.service.runtime.layout import Layout
from seqserve.service.runtime.manifest import Manifest
from seqserve.service.runtime.transform import Transform
from seqserve.service.state.codec import decode_state, encode_state
from seqserve.service.state.slab import Slab
from seqserve.service.state.table import SessionTable, decode_id, encode_id

MANIFEST = {
    "name": "m",
    "version": "1",
    "cell": "lstm",
    "sha256": "0" * 64,
    "opset": 17,
    "signature": {
        "data_input": {"name": "x", "shape": ["b", "t", 2]},
        "data_output": {"name": "y", "shape": ["b", "t", 2]},
        "state": [{"input": "h0", "output": "hn", "layers": 1, "size": 3}],
    },
    "features": [
        {"name": "a", "difference": True, "mean": 1.0, "std": 2.0},
        {"name": "b", "mean": -1.0, "std": 4.0},
    ],
    "outputs": [{"name": "b_next", "feature": 1}, {"name": "a_next", "feature": 0}],
}


def test_transform_encodes_differences_and_scaling() -> None:
    t = Transform(Manifest.model_validate(MANIFEST))
    raw = np.array([[[10.0, 3.0], [13.0, 7.0]], [[10.0, 3.0], [13.0, 7.0]]])
    prev = np.array([[9.0, 0.0], [0.0, 0.0]])
    x = t.encode(raw, prev, np.array([True, False]))
    # first row has a predecessor (9 -> 10: diff 1); second row starts fresh (diff 0)
    np.testing.assert_allclose(x[0, :, 0], [(1 - 1) / 2, (3 - 1) / 2])
    np.testing.assert_allclose(x[1, :, 0], [(0 - 1) / 2, (3 - 1) / 2])
    np.testing.assert_allclose(x[:, :, 1], [[1.0, 2.0], [1.0, 2.0]])
    assert x.dtype == np.float32


def test_transform_decodes_into_dataset_units_and_feeds_back() -> None:
    t = Transform(Manifest.model_validate(MANIFEST))
    raw = np.array([[[10.0, 3.0]]])
    y = np.array([[[0.5, 0.25]]], dtype=np.float32)
    out = t.decode(y, raw)
    # channel 0 predicts b (not differenced): 0.5*4-1; channel 1 predicts a: 10 + 0.25*2+1
    np.testing.assert_allclose(out[0, 0], [1.0, 11.5])
    np.testing.assert_allclose(t.feedback(out[:, 0]), [[11.5, 1.0]])


def test_manifest_rejects_inconsistent_counts() -> None:
    bad = {**MANIFEST, "outputs": [{"name": "only_one", "feature": 0}]}
    with pytest.raises(ValueError, match="2 channels but 1 listed"):
        Manifest.model_validate(bad)
    bad = {**MANIFEST, "outputs": [{"name": "p", "feature": 5}, {"name": "q"}]}
    with pytest.raises(ValueError, match="missing feature 5"):
        Manifest.model_validate(bad)


def test_slab_reuses_rows_and_grows_without_losing_data() -> None:
    layout = Layout(((2, 3),), 1, 1)
    slab = Slab(layout, capacity=2)
    rows = [slab.alloc() for _ in range(2)]
    state = layout.zeros(2)
    state.tensors[0][:] = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    slab.scatter(rows, state)
    extra = slab.alloc()  # forces growth
    assert slab.capacity == 4
    np.testing.assert_array_equal(slab.gather(rows).tensors[0], state.tensors[0])
    slab.free(rows[0])
    again = slab.alloc()
    assert again == rows[0]
    assert not slab.gather([again]).tensors[0].any()  # a reused row starts at zero
    assert slab.used == 3
    assert extra not in rows


def test_state_codec_round_trips_exactly_and_detects_damage() -> None:
    layout = Layout(((1, 4), (1, 4)), 1, 1)
    rng = np.random.default_rng(0)
    state = layout.zeros(1)
    for t in state.tensors:
        t[:] = rng.normal(size=t.shape).astype(np.float32)
    state.prev_x[:] = 315.123456789
    state.last_y[:] = 316.000000001
    doc = encode_state("m", "1", 7, ["h0", "c0"], state)
    step, back = decode_state(doc, ["h0", "c0"], layout)
    assert step == 7
    for a, b in zip(back.tensors, state.tensors, strict=True):
        assert a.tobytes() == b.tobytes()
    assert back.prev_x.tobytes() == state.prev_x.tobytes()
    for broken in (
        {**doc, "checksum": "0" * 64},
        {**doc, "last_y": [1.0]},
        {**doc, "tensors": {"h0": doc["tensors"]["h0"]}},
        {**doc, "tensors": {**doc["tensors"], "c0": {"data": "!!"}}},
        {**doc, "step": -1},
        {**doc, "prev_x": ["x"]},
    ):
        with pytest.raises(BadInput):
            decode_state(broken, ["h0", "c0"], layout)


def test_session_ids_name_their_slot_and_need_the_secret() -> None:
    table = SessionTable(capacity=2)
    slots = [table.alloc(None) for _ in range(5)]  # grows twice
    assert table.capacity == 8
    for slot, sid in slots:
        assert len(sid) == 27
        assert table.find(sid) == slot
        assert decode_id(sid, table._mask) == (slot, table.cols["secret"][slot].tobytes())
    slot, sid = slots[0]
    forged = encode_id(slot, b"\0" * 16, table._mask)
    assert table.find(forged) is None
    assert table.find(sid[:-1] + ("A" if sid[-1] != "A" else "B")) is None
    for junk in ("", "x", "!" * 27, "a" * 100):
        assert table.find(junk) is None
    table.free(slot)
    assert table.find(sid) is None
    again, new_sid = table.alloc(None)
    assert again == slot  # the slot is reused under a new secret
    assert new_sid != sid
    assert table.find(sid) is None


def test_adapter_chosen_ids_live_beside_generated_ones() -> None:
    table = SessionTable(capacity=4)
    slot, sid = table.alloc("v2-abc")
    assert sid == "v2-abc"
    assert table.find("v2-abc") == slot
    secret = table.cols["secret"][slot].tobytes()
    assert table.find(encode_id(slot, secret, table._mask)) is None
    table.free(slot)
    assert table.find("v2-abc") is None


def test_only_the_canonical_spelling_of_an_id_is_accepted() -> None:
    table = SessionTable()
    slot, sid = table.alloc(None)
    secret = table.cols["secret"][slot].tobytes()
    assert decode_id(sid, table._mask) == (slot, secret)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(sid[-1])
    for unused_bits in (1, 2, 3):  # the same 20 bytes, with the padding bits set
        variant = sid[:-1] + alphabet[last + unused_bits]
        assert decode_id(variant, table._mask) is None
        assert table.find(variant) is None
    for other in ("+", "/", "=", " ", "\n"):  # standard base64, padding, whitespace
        assert decode_id(sid[:5] + other + sid[6:], table._mask) is None
        assert decode_id(sid + other, table._mask) is None
    assert decode_id(sid[:-1], table._mask) is None
