"""V2 error paths: always a 4xx `{"error": ...}` with Triton's message, never a 5xx."""

from __future__ import annotations

import gzip
import json
import struct
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.service.v2.conftest import MAX_BODY
from tests.service.v2.support import infer_body

pytestmark = pytest.mark.service

URL = "/v2/models/multi/infer"
GOOD = infer_body([0.5] * 6, [1, 2, 3])


def _error(response: Any, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert fragment in response.json()["error"], response.json()


def test_a_good_request_passes(v2: TestClient) -> None:
    response = v2.post(URL, content=orjson.dumps(GOOD))
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["shape"] == [1, 2, 3]


BAD_BODIES: list[tuple[Any, str]] = [
    (b"{not json", "failed to parse the request JSON buffer"),
    (b"[1, 2]", "Unable to parse 'request'"),
    (b"{}", "Unable to parse 'inputs'"),
    ({"inputs": {}}, "Unable to parse 'inputs'"),
    ({"inputs": [1]}, "Unable to parse 'inputs'"),
    ({"inputs": [{"datatype": "FP32", "shape": [1], "data": [1]}]}, "Unable to parse 'name'"),
    (infer_body([1] * 6, [1, 2, 3], "INT32"), "data-type is 'INT32', but model 'multi' expects"),
    (infer_body(["a"], [1], "BYTES"), "unsupported datatype 'BYTES'"),
    (infer_body([0.5] * 4, [1, 2, 2]), "Expected [-1, -1, 3], got [1, 2, 2]"),
    (infer_body([0.5] * 6, [6]), "Expected [-1, -1, 3], got [6]"),
    (infer_body([0.5] * 5, [1, 2, 3]), "unexpected number of elements"),
    (infer_body([0.5] * 6, [1, 2, -3]), "Unable to parse 'shape'"),
    (infer_body([0.5] * 5 + [True], [1, 2, 3]), "not all values are float32"),
    (infer_body([0.5] * 5 + ["1"], [1, 2, 3]), "not all values are float32"),
    (infer_body([0.5] * 5 + [None], [1, 2, 3]), "not all values are float32"),
    (infer_body([], [0, 2, 3]), "give 1 to"),
    (infer_body([], [1, 0, 3]), "inputs must be [T][3]"),
    (infer_body([1e39] * 6, [1, 2, 3]), "out of range for float32"),
    (infer_body([0.5] * 6, [1, 2, 3], name="z"), "unexpected inference input 'z'"),
    (infer_body([0.5] * 6, [1, 2, 3], triton_x=1), "reserved for Triton usage"),
    (infer_body([0.5] * 6, [1, 2, 3], binary_data_output="yes"), "binary_data_output"),
    ({**GOOD, "outputs": [{"name": "q"}]}, "unexpected inference output 'q'"),
    (
        {
            **GOOD,
            "outputs": [{"name": "hn"}],
            "parameters": {"sequence_id": 3, "sequence_start": True},
        },
        "unexpected inference output 'hn'",
    ),
    (
        {**GOOD, "outputs": [{"name": "y", "parameters": {"classification": -1}}]},
        "Unable to parse 'classification'",
    ),
    ({**GOOD, "id": 5}, "Unable to parse 'id'"),
    (
        {"inputs": [{**GOOD["inputs"][0], "parameters": {"shared_memory_region": "r"}}]},
        "shared memory is not supported",
    ),
    (
        {"inputs": [{**GOOD["inputs"][0], "parameters": {"binary_data_size": 24}}]},
        "both 'data' and 'binary_data_size'",
    ),
]


@pytest.mark.parametrize(("body", "fragment"), BAD_BODIES)
def test_bad_requests_answer_400(v2: TestClient, body: Any, fragment: str) -> None:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    _error(v2.post(URL, content=content), 400, fragment)


def _binary(header: dict[str, Any], blob: bytes, length: int | None = None) -> dict[str, Any]:
    head = orjson.dumps(header)
    size = len(head) if length is None else length
    return {"content": head + blob, "headers": {"Inference-Header-Content-Length": str(size)}}


def test_binary_framing_errors(v2: TestClient) -> None:
    spec = {"name": "x", "datatype": "FP32", "shape": [1, 2, 3]}
    six = struct.pack("<6f", *range(6))
    sized = {"inputs": [{**spec, "parameters": {"binary_data_size": 24}}]}
    assert v2.post(URL, **_binary(sized, six)).status_code == 200
    _error(v2.post(URL, **_binary(sized, six[:20])), 400, "expecting 4 additional bytes")
    _error(v2.post(URL, **_binary(sized, six + b"xx")), 400, "unexpected additional input data")
    short = {"inputs": [{**spec, "parameters": {"binary_data_size": 20}}]}
    _error(v2.post(URL, **_binary(short, six[:20])), 400, "input byte size mismatch")
    _error(v2.post(URL, **_binary(sized, six, 10_000)), 400, "inference header size")
    _error(v2.post(URL, **_binary(sized, six, 0)), 400, "inference header size")
    unframed = orjson.dumps(sized) + six
    _error(v2.post(URL, content=unframed), 400, "failed to parse the request JSON buffer")
    _error(v2.post(URL, content=orjson.dumps(sized)), 400, "Infer-Header-Content-Length")
    nan = struct.pack("<6f", *([float("nan")] * 6))
    _error(v2.post(URL, **_binary(sized, nan)), 400, "NaN or Infinity")


@pytest.mark.parametrize(
    ("path", "status", "fragment"),
    [
        ("/v2/models/nope/infer", 404, "Request for unknown model: 'nope' is not found"),
        ("/v2/models/multi/versions/9/infer", 404, "'multi' version 9 is not found"),
        ("/v2/models/multi/versions/abc/infer", 400, "version should be an integral value"),
        ("/v2/models/multi/versions/0/infer", 400, "version should be an integral value"),
    ],
)
def test_unknown_models_and_versions(v2: TestClient, path: str, status: int, fragment: str) -> None:
    _error(v2.post(path, content=orjson.dumps(GOOD)), status, fragment)
    _error(v2.get(path.removesuffix("/infer")), status, fragment)
    _error(v2.get(path.replace("/infer", "/config")), status, fragment)
    _error(v2.get(path.replace("/infer", "/ready")), status, fragment)
    _error(v2.get(path.replace("/infer", "/stats")), status, fragment)


def test_unknown_paths_answer_triton_style(v2: TestClient) -> None:
    _error(v2.get("/v2/nothing/here"), 404, "Not Found")
    _error(v2.post("/v2/repository/models/multi/reload"), 404, "Not Found")
    _error(v2.post("/v2/repository/index", content=b"{bad"), 400, "repository index")


def test_compression_errors_and_body_caps(v2: TestClient) -> None:
    content = orjson.dumps(GOOD)
    ok = v2.post(URL, content=gzip.compress(content), headers={"Content-Encoding": "gzip"})
    assert ok.status_code == 200, ok.text
    response = v2.post(URL, content=content, headers={"Content-Encoding": "br"})
    _error(response, 400, "Unsupported compression type")
    assert response.headers["accept-encoding"] == "gzip, deflate"
    _error(v2.post(URL, content=b"garbage", headers={"Content-Encoding": "gzip"}), 400, "failed")
    # a gzip bomb: 70 KiB on the wire would inflate to 64 MiB; refused at the 64 KiB cap
    bomb = gzip.compress(b" " * (64 << 20))
    assert len(bomb) < MAX_BODY
    response = v2.post(URL, content=bomb, headers={"Content-Encoding": "gzip"})
    _error(response, 413, f"exceeds {MAX_BODY} bytes")
    _error(v2.post(URL, content=b" " * (MAX_BODY + 1)), 413, f"exceeds {MAX_BODY} bytes")

    def chunks() -> Any:  # no Content-Length: the limit applies while streaming
        for _ in range(MAX_BODY // 1024 + 2):
            yield b" " * 1024

    _error(v2.post(URL, content=chunks()), 413, f"exceeds {MAX_BODY} bytes")


def test_state_inputs_are_checked(v2: TestClient) -> None:
    def state(shape: list[int], name: str = "h0") -> dict[str, Any]:
        count = shape[0] * shape[1] * shape[2]
        return {"name": name, "datatype": "FP32", "shape": shape, "data": [0.0] * count}

    base = GOOD["inputs"][0]
    only_h = {"inputs": [base, state([2, 1, 8])]}
    _error(v2.post(URL, content=orjson.dumps(only_h)), 400, "all of the state inputs")
    wrong = {"inputs": [base, state([2, 2, 8]), state([2, 1, 8], "c0")]}
    _error(v2.post(URL, content=orjson.dumps(wrong)), 400, "Expected [2, 1, 8], got [2, 2, 8]")
    seq = {**only_h, "parameters": {"sequence_id": 1, "sequence_start": True}}
    _error(v2.post(URL, content=orjson.dumps(seq)), 400, "unexpected inference input 'h0'")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
TENSOR = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["x", "h0", "c0", "y"]) | JSON,
        "datatype": st.sampled_from(["FP32", "FP64", "INT64", "BOOL", "BYTES"]) | JSON,
        "shape": st.lists(st.integers(-1, 4), max_size=4) | JSON,
        "data": st.lists(st.floats(-10, 10) | st.integers(-3, 3), max_size=30) | JSON,
        "parameters": st.dictionaries(
            st.sampled_from(["binary_data_size", "binary_data", "classification"]), JSON
        ),
    },
)
REQUEST = st.fixed_dictionaries(
    {"inputs": st.lists(TENSOR, max_size=3) | JSON},
    optional={
        "outputs": st.lists(TENSOR, max_size=2) | JSON,
        "parameters": st.dictionaries(
            st.sampled_from(
                ["sequence_id", "sequence_start", "sequence_end", "binary_data_output", "priority"]
            ),
            JSON | st.integers(0, 3),
        ),
        "id": JSON,
    },
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=REQUEST)
def test_fuzzed_requests_never_fail_with_5xx(v2: TestClient, body: dict[str, Any]) -> None:
    response = v2.post(URL, content=json.dumps(body))  # stdlib: integers of any size
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        assert isinstance(response.json()["error"], str)


def test_a_refused_sequence_request_starts_nothing(v2: TestClient) -> None:
    start = {**GOOD, "parameters": {"sequence_id": 77, "sequence_start": True}}
    for bad in (
        {**start, "outputs": [{"name": "hn"}]},
        {**start, "outputs": [{"name": "y"}, {"name": "zz"}]},
        {**start, "inputs": [{**GOOD["inputs"][0], "shape": [1, 3, 2]}]},
    ):
        _error(v2.post(URL, content=orjson.dumps(bad)), 400, "unexpected")
    go_on = {**GOOD, "parameters": {"sequence_id": 77}}
    _error(v2.post(URL, content=orjson.dumps(go_on)), 400, "must specify the START flag")


def test_explicit_state_out_of_range_is_refused(v2: TestClient) -> None:
    state = [
        {"name": n, "datatype": "FP64", "shape": [2, 1, 8], "data": [1e300] * 16}
        for n in ("h0", "c0")
    ]
    body = {"inputs": [GOOD["inputs"][0], *state]}
    _error(v2.post(URL, content=orjson.dumps(body)), 400, "state contains NaN or Infinity")
