"""V2 gRPC messages <-> the protocol-neutral request and answer (`api/v2/dataplane.py`).

Inputs come as typed `contents` or as `raw_input_contents` (one blob per input, in input order,
little-endian as in the binary tensor data extension); outputs always go back as
`raw_output_contents`, as Triton answers. Parameters of any type pass through as plain values,
so whatever the V2 sequence mapping reads (`sequence_id`, flags, step indexes) means the same
over HTTP and gRPC.
"""

from __future__ import annotations

from typing import Any

from seqserve.service.api.v2.codec import InferRequest, Requested
from seqserve.service.api.v2.dataplane import Answer
from seqserve.service.api.v2.errors import V2Error
from seqserve.service.api.v2.tensors import DTYPES, Tensor, decode, wire_bytes

# the typed `contents` field for each datatype (FP16 has none: raw contents only)
_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}


def parameters(params: Any) -> dict[str, Any]:
    """A map<string, InferParameter> as plain values (bool, int, str or float)."""
    values: dict[str, Any] = {}
    for key, param in params.items():
        which = param.WhichOneof("parameter_choice")
        values[key] = None if which is None else getattr(param, which)
    return values


def parse(request: Any) -> InferRequest:
    """A ModelInferRequest as the V2 request the data plane runs (V2Error when malformed)."""
    params = parameters(request.parameters)
    if any(key.startswith("triton_") for key in params):
        raise V2Error(
            "parameter keys starting with 'triton_' are reserved for Triton usage "
            "and should not be specified."
        )
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise V2Error(
            f"expected {len(request.inputs)} raw input contents (one per input), got {len(raw)}"
        )
    inputs: list[Tensor] = []
    for k, spec in enumerate(request.inputs):
        tensor = _input(spec, raw[k] if raw else None)
        if any(t.name == tensor.name for t in inputs):
            raise V2Error(f"input '{tensor.name}' already exists in request")
        inputs.append(tensor)
    outputs = [_output(spec) for spec in request.outputs] or None
    return InferRequest(request.id or None, params, inputs, outputs, True)


def _input(spec: Any, raw: bytes | None) -> Tensor:
    name, datatype, shape = spec.name, spec.datatype, list(spec.shape)
    if any(d < 0 for d in shape):
        raise V2Error(f"Unable to parse 'shape' of input '{name}'")
    if any(key.startswith("shared_memory") for key in spec.parameters):
        raise V2Error("shared memory is not supported: send the tensor as contents or raw data")
    wire = {"name": name, "datatype": datatype, "shape": shape}
    if raw is not None:
        if spec.HasField("contents"):
            raise V2Error(f"input '{name}' has both 'contents' and 'raw_input_contents'")
        return decode(wire, None, raw)
    field = _CONTENTS.get(datatype)
    if field is None and datatype in DTYPES:
        raise V2Error(f"input '{name}': {datatype} travels in 'raw_input_contents' only")
    values = list(getattr(spec.contents, field)) if field is not None else []
    return decode(wire, values, None)


def _output(spec: Any) -> Requested:
    params = parameters(spec.parameters)
    if any(key.startswith("shared_memory") for key in params):
        raise V2Error("shared memory is not supported: ask for raw output contents")
    classes = params.get("classification", 0)
    if type(classes) is not int or classes < 0:
        raise V2Error(f"Unable to parse 'classification' of output '{spec.name}'")
    return Requested(spec.name, True, classes)


def encode(answer: Answer, pb: Any) -> Any:
    """The ModelInferResponse for an answer (`pb`: the service_pb2 module)."""
    return encode_into(answer, pb.ModelInferResponse())


def encode_into(answer: Answer, response: Any) -> Any:
    """Fill an empty ModelInferResponse in place (e.g. a stream answer's `infer_response`:
    building it apart and passing it in would copy it)."""
    m = answer.model.manifest
    response.model_name = m.name
    response.model_version = m.version
    response.id = answer.request.id or ""
    for out in answer.outputs:
        tensor = response.outputs.add()
        tensor.name = out.name
        tensor.datatype = out.datatype
        tensor.shape.extend(out.array.shape)
        response.raw_output_contents.append(wire_bytes(out.array, out.datatype))
    for key, value in answer.parameters.items():  # e.g. sequence_step, sequence_replayed
        param = response.parameters[key]
        if isinstance(value, bool):
            param.bool_param = value
        elif isinstance(value, int):
            param.int64_param = value
        else:
            param.string_param = str(value)
    return response
