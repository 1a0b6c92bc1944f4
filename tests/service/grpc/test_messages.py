"""ModelInferRequest parsing: typed and raw contents, and malformed messages refused as V2 does."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from seqserve.service.api.v2.errors import V2Error

from tests.service.v2.support import require

pb = require("tritonclient.grpc").service_pb2
messages = require("seqserve.service.api.grpc.messages")


def _request(datatype: str = "FP32", shape: tuple[int, ...] = (1, 2, 3)) -> Any:
    request = pb.ModelInferRequest(model_name="multi", id="r7")
    request.inputs.add(name="x", datatype=datatype, shape=list(shape))
    return request


def test_typed_and_raw_contents_give_the_same_tensor_and_parameters_pass_through() -> None:
    values = np.arange(6, dtype=np.float32) / 4
    typed, raw = _request(), _request()
    typed.inputs[0].contents.fp32_contents.extend(values.tolist())
    raw.raw_input_contents.append(values.tobytes())
    raw.parameters["sequence_id"].uint64_param = 2**64 - 1
    raw.parameters["sequence_start"].bool_param = True
    raw.parameters["sequence_step"].int64_param = 12  # unknown to this layer: passed through
    raw.outputs.add(name="y").parameters["classification"].int64_param = 2
    a, b = messages.parse(typed), messages.parse(raw)
    np.testing.assert_array_equal(a.inputs[0].array, values.reshape(1, 2, 3))
    np.testing.assert_array_equal(b.inputs[0].array, a.inputs[0].array)
    assert a.id == "r7"
    assert a.outputs is None
    assert b.parameters == {"sequence_id": 2**64 - 1, "sequence_start": True, "sequence_step": 12}
    assert [(o.name, o.classes) for o in b.outputs] == [("y", 2)]


def _too_many_raw(request: Any) -> None:
    request.raw_input_contents.extend([b"\0" * 24, b""])


def _both(request: Any) -> None:
    request.inputs[0].contents.fp32_contents.extend([0.0] * 6)
    request.raw_input_contents.append(b"\0" * 24)


def _reserved(request: Any) -> None:
    request.parameters["triton_enable_x"].bool_param = True


def _short(request: Any) -> None:
    request.inputs[0].contents.fp32_contents.extend([0.0] * 5)


def _out_of_range(request: Any) -> None:
    request.inputs[0].datatype = "INT8"
    request.inputs[0].contents.int_contents.extend([300] * 6)


def _fp16_typed(request: Any) -> None:
    request.inputs[0].datatype = "FP16"


def _shared_memory(request: Any) -> None:
    request.inputs[0].parameters["shared_memory_region"].string_param = "r"


def _duplicate(request: Any) -> None:
    request.inputs[0].contents.fp32_contents.extend([0.0] * 6)
    request.inputs.append(request.inputs[0])


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (_too_many_raw, "expected 1 raw input contents"),
        (_both, "both 'contents' and 'raw_input_contents'"),
        (_reserved, "reserved for Triton usage"),
        (_short, "unexpected number of elements"),
        (_out_of_range, "out of range for int8"),
        (_fp16_typed, "FP16 travels in 'raw_input_contents' only"),
        (_shared_memory, "shared memory is not supported"),
        (_duplicate, "input 'x' already exists"),
    ],
)
def test_malformed_requests_are_invalid_arguments(spoil: Any, message: str) -> None:
    request = _request()
    spoil(request)
    with pytest.raises(V2Error, match=message) as caught:
        messages.parse(request)
    assert caught.value.status == 400


def test_a_raw_blob_of_the_wrong_size_is_refused() -> None:
    request = _request()
    request.raw_input_contents.append(b"\0" * 23)
    with pytest.raises(V2Error, match="Expected 24, got 23"):
        messages.parse(request)
