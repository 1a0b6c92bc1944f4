"""The V2 wire format without a server: tritonclient's own encoder and decoder against ours."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import zlib
from typing import Any

import numpy as np
import pytest
from seqserve.service.api.v2 import codec, compression, sequences
from seqserve.service.api.v2.errors import V2Error

from tests.service.v2.support import require

pytestmark = pytest.mark.service


def _client_request(
    arrays: dict[str, np.ndarray], binary: bool, **kwargs: Any
) -> tuple[bytes, int | None]:
    http = require("tritonclient.http")
    from tritonclient.http._utils import _get_inference_request

    inputs = []
    for name, array in arrays.items():
        datatype = {"float32": "FP32", "float64": "FP64", "int32": "INT32"}[array.dtype.name]
        tensor = http.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    defaults: dict[str, Any] = {
        "request_id": "",
        "outputs": None,
        "sequence_id": 0,
        "sequence_start": False,
        "sequence_end": False,
        "priority": 0,
        "timeout": None,
        "custom_parameters": None,
    }
    body, json_size = _get_inference_request(inputs=inputs, **(defaults | kwargs))
    return body, json_size


@pytest.mark.parametrize("binary", [True, False])
def test_requests_from_tritonclient_parse_exactly(binary: bool) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "x": rng.normal(size=(2, 3, 4)).astype(np.float32),
        "h0": rng.normal(size=(1, 2, 5)),
        "n": np.arange(6, dtype=np.int32).reshape(2, 3),
    }
    body, size = _client_request(
        arrays, binary, request_id="r1", sequence_id="abc", sequence_start=True
    )
    req = codec.parse(body, None if size is None else str(size), "m")
    assert req.id == "r1"
    assert req.parameters["sequence_id"] == "abc"
    assert req.binary_output is True  # no outputs named: the client asks for binary
    got = {t.name: t for t in req.inputs}
    for name, array in arrays.items():
        assert got[name].shape == array.shape
        np.testing.assert_array_equal(got[name].array, array)
    assert sequences.parse(req.parameters, "m") == sequences.Sequence("abc", True, False)


@pytest.mark.parametrize("binary", [True, False])
def test_responses_decode_in_tritonclient(binary: bool) -> None:
    http = require("tritonclient.http")
    y = np.random.default_rng(1).normal(size=(1, 3, 2)).astype(np.float32)
    labels = codec.classify(y[:, :1], 2, ["a", "b"])
    outputs = [
        codec.Output("y", "FP32", y, binary),
        codec.Output("top", "BYTES", labels, binary),
    ]
    body, size = codec.encode("m", "3", "r9", outputs)
    for encoding in (None, "gzip", "deflate"):
        wire = body if encoding is None else compression.deflate(body, encoding)
        result = http.InferResult.from_response_body(wire, False, size, encoding)
        np.testing.assert_array_equal(result.as_numpy("y"), y)
        assert result.get_response()["model_version"] == "3"
        assert result.get_response()["id"] == "r9"
        top = result.as_numpy("top")
        assert top.shape == (1, 2)
        first = top[0, 0].decode() if isinstance(top[0, 0], bytes) else top[0, 0]
        value, index, label = first.split(":")
        assert float(value) == pytest.approx(y[0, 0].max(), abs=1e-6)
        assert label == ["a", "b"][int(index)]


def test_classification_orders_like_triton() -> None:
    values = np.array([[1.0, 5.0, 10.0, 4.0]])
    got = codec.classify(values, 2, None)
    assert [s.decode() for s in got[0]] == ["10.000000:2", "5.000000:1"]


def test_inflate_caps_the_decompressed_size() -> None:
    payload = b"{" + b" " * 10_000 + b"}"
    assert compression.inflate(gzip.compress(payload), "gzip", 20_000) == payload
    assert compression.inflate(zlib.compress(payload), "deflate", 20_000) == payload
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw = raw_deflate.compress(payload) + raw_deflate.flush()
    assert compression.inflate(raw, "deflate", 20_000) == payload
    assert compression.inflate(gzip.compress(payload) * 2, "gzip", 30_000) == payload * 2
    with pytest.raises(V2Error) as bomb:
        compression.inflate(gzip.compress(b"\0" * 10_000_000), "gzip", 1 << 20)
    assert bomb.value.status == 413
    for bad, coding in ((b"not gzip", "gzip"), (gzip.compress(payload)[:-9], "gzip")):
        with pytest.raises(V2Error, match="failed to decompress"):
            compression.inflate(bad, coding, 1 << 20)
    with pytest.raises(V2Error, match="Unsupported compression type") as other:
        compression.inflate(payload, "br", 1 << 20)
    assert other.value.headers["Accept-Encoding"] == "gzip, deflate"


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, None),
        ("gzip", "gzip"),
        ("deflate", "deflate"),
        ("br, deflate;q=0.5, gzip;q=0.8", "gzip"),
        ("gzip;q=0, deflate", "deflate"),
        ("identity", None),
        ("gzip;q=abc", None),
    ],
)
def test_accept_encoding_negotiation(accept: str | None, chosen: str | None) -> None:
    assert compression.negotiate(accept) == chosen


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"sequence_start": True}, "non-zero or non-empty correlation ID"),
        ({"sequence_id": 0, "sequence_end": True}, "non-zero or non-empty correlation ID"),
        ({"sequence_id": "", "sequence_start": True}, "non-zero or non-empty correlation ID"),
        ({"sequence_id": -1}, "Unable to parse 'sequence_id'"),
        ({"sequence_id": 2**64}, "Unable to parse 'sequence_id'"),
        ({"sequence_id": True}, "Unable to parse 'sequence_id'"),
        ({"sequence_id": 1.5}, "Unable to parse 'sequence_id'"),
        ({"sequence_id": 1, "sequence_start": 1}, "Unable to parse 'sequence_start'"),
        ({"sequence_id": "x" * 300}, "at most"),
    ],
)
def test_sequence_parameters_refused_with_tritons_messages(
    params: dict[str, Any], message: str
) -> None:
    with pytest.raises(V2Error, match=message):
        sequences.parse(params, "m")


def test_sequence_session_ids_separate_callers_models_and_id_types() -> None:
    assert sequences.parse({}, "m") is None
    assert sequences.parse({"sequence_id": 0}, "m") is None
    ids = {
        sequences.session_id(owner, model, seq)
        for owner in (None, "k1")
        for model in ("a", "b")
        for seq in (7, "7", 2**64 - 1)
    }
    assert len(ids) == 12


def test_sequence_session_ids_are_the_same_in_every_process() -> None:
    """Replicas derive a sequence's session from its id alone, so the derivation must not
    depend on the process (hash seeds) or change between releases (a rolling upgrade would
    orphan every running sequence): pinned values, and a fresh interpreter agrees."""
    pinned = {
        ("k1", "a", 7): "v2-959f0ec466e6871a53cb1817e6747eed",
        (None, "a", "7"): "v2-38398b39f9273e0d98a1510834077b5f",
    }
    for args, want in pinned.items():
        assert sequences.session_id(*args) == want
    code = (
        "from seqserve.service.api.v2.sequences import session_id; print(session_id('k1', 'a', 7))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert other.stdout.strip() == pinned[("k1", "a", 7)]
