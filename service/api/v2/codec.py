"""The V2 inference request and response bodies: a JSON header, then binary tensor data.

With `Inference-Header-Content-Length: n` the first n bytes are the JSON header and the rest
holds the inputs whose parameters give a `binary_data_size`, in input order. Outputs go back
as JSON `data`, or as binary data when asked (per output `binary_data`, or for all outputs
with the request parameter `binary_data_output`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from seqserve.service.api.v2.digits import parse_digits
from seqserve.service.api.v2.errors import V2Error
from seqserve.service.api.v2.tensors import Tensor, decode, json_data, wire_bytes

Array = np.ndarray


@dataclass(frozen=True)
class Requested:
    name: str
    binary: bool | None  # None: the request's default
    classes: int = 0  # > 0: return the top-n classifications instead of the tensor


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    parameters: dict[str, Any]
    inputs: list[Tensor]
    outputs: list[Requested] | None  # None: every default output
    binary_output: bool


@dataclass(frozen=True)
class Output:
    name: str
    datatype: str
    array: Array
    binary: bool
    parameters: dict[str, Any] = field(default_factory=dict)


def _header_size(given: str | None, total: int) -> int | None:
    if given is None:
        return None
    value = parse_digits(given.strip())
    if value is None or not 0 < value <= total:
        raise V2Error(f"inference header size should be in range (0, {total}], got: {given[:64]}")
    return value


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise V2Error(f"Unable to parse '{what}': expected a JSON object")
    return value


def _field(spec: dict[str, Any], key: str, kind: type, what: str) -> Any:
    value = spec.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) is not (kind is bool):
        raise V2Error(f"Unable to parse '{key}' of {what}")
    return value


def parse(body: bytes, header_length: str | None, model: str) -> InferRequest:
    size = _header_size(header_length, len(body))
    head, rest = (body, b"") if size is None else (body[:size], body[size:])
    try:
        doc = _object(orjson.loads(head), "request")
    except orjson.JSONDecodeError as exc:
        raise V2Error(f"failed to parse the request JSON buffer: {exc}") from None
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise V2Error("Unable to parse 'id'")
    params = _object(doc.get("parameters", {}), "parameters")
    if any(key.startswith("triton_") for key in params):
        raise V2Error(
            "parameter keys starting with 'triton_' are reserved for Triton usage "
            "and should not be specified."
        )
    binary_output = params.get("binary_data_output", False)
    if not isinstance(binary_output, bool):
        raise V2Error("Unable to parse 'binary_data_output'")
    specs = doc.get("inputs")
    if not isinstance(specs, list):
        raise V2Error("Unable to parse 'inputs'")
    inputs: list[Tensor] = []
    offset = 0
    for spec in specs:
        tensor, offset = _input(_object(spec, "inputs"), rest, offset, size is not None)
        if any(t.name == tensor.name for t in inputs):
            raise V2Error(f"input '{tensor.name}' already exists in request")
        inputs.append(tensor)
    if offset != len(rest):
        raise V2Error(f"unexpected additional input data for model '{model}'")
    outputs = None
    if "outputs" in doc:
        if not isinstance(doc["outputs"], list):
            raise V2Error("Unable to parse 'outputs'")
        outputs = [_output(_object(spec, "outputs")) for spec in doc["outputs"]]
    return InferRequest(request_id, params, inputs, outputs, binary_output)


def _input(spec: dict[str, Any], rest: bytes, offset: int, framed: bool) -> tuple[Tensor, int]:
    name = _field(spec, "name", str, "an input")
    what = f"input '{name}'"
    _field(spec, "datatype", str, what)
    shape = _field(spec, "shape", list, what)
    if not all(type(d) is int and d >= 0 for d in shape):
        raise V2Error(f"Unable to parse 'shape' of {what}")
    params = _object(spec.get("parameters", {}), "parameters")
    if any(key.startswith("shared_memory") for key in params):
        raise V2Error("shared memory is not supported: send the tensor as JSON or binary data")
    size = params.get("binary_data_size")
    if size is None:
        data = spec.get("data")
        if not isinstance(data, list):
            raise V2Error(f"Unable to parse 'data' of {what}")
        return decode(spec, data, None), offset
    if "data" in spec:
        raise V2Error(f"{what} has both 'data' and 'binary_data_size'")
    if type(size) is not int or size < 0:
        raise V2Error(f"Unable to parse 'binary_data_size' of {what}")
    if not framed:
        raise V2Error(
            "must specify valid 'Infer-Header-Content-Length' in request header and "
            "'binary_data_size' when passing inputs in binary data format"
        )
    if offset + size > len(rest):
        raise V2Error(
            f"unexpected size for input '{name}', expecting {offset + size - len(rest)} "
            "additional bytes"
        )
    return decode(spec, None, rest[offset : offset + size]), offset + size


def _output(spec: dict[str, Any]) -> Requested:
    name = _field(spec, "name", str, "an output")
    params = _object(spec.get("parameters", {}), "parameters")
    if any(key.startswith("shared_memory") for key in params):
        raise V2Error("shared memory is not supported: ask for JSON or binary data")
    binary = params.get("binary_data")
    if binary is not None and not isinstance(binary, bool):
        raise V2Error(f"Unable to parse 'binary_data' of output '{name}'")
    classes = params.get("classification", 0)
    if type(classes) is not int or classes < 0:
        raise V2Error(f"Unable to parse 'classification' of output '{name}'")
    return Requested(name, binary, classes)


def encode(
    model: str,
    version: str,
    request_id: str | None,
    outputs: list[Output],
    parameters: dict[str, Any] | None = None,
) -> tuple[bytes, int | None]:
    """(body, JSON header length when binary data follows it, else None)."""
    header: dict[str, Any] = {} if request_id is None else {"id": request_id}
    header |= {"model_name": model, "model_version": version}
    if parameters:
        header["parameters"] = parameters
    header["outputs"] = []
    blobs: list[bytes] = []
    for out in outputs:
        entry: dict[str, Any] = {
            "name": out.name,
            "datatype": out.datatype,
            "shape": list(out.array.shape),
        }
        if out.binary:
            blob = wire_bytes(out.array, out.datatype)
            entry["parameters"] = {**out.parameters, "binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            if out.parameters:
                entry["parameters"] = out.parameters
            entry["data"] = json_data(out.array, out.datatype)
        header["outputs"].append(entry)
    head = orjson.dumps(header, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return head, None
    return head + b"".join(blobs), len(head)


def classify(values: Array, count: int, labels: list[str] | None) -> Array:
    """Triton's classification: for each batch entry (first dim) the `count` largest elements
    of the rest, as BYTES "<value>:<index>[:<label>]", shape [batch, count]."""
    flat = values.reshape(values.shape[0], -1)
    top = np.argsort(-flat, axis=1, kind="stable")[:, :count]
    rows = []
    for b, order in enumerate(top):
        row = []
        for i in order:
            label = f":{labels[i]}" if labels is not None and i < len(labels) else ""
            row.append(f"{flat[b, i]:f}:{i}{label}".encode())
        rows.append(row)
    result = np.empty((flat.shape[0], top.shape[1]), dtype=object)
    result[:] = rows
    return result
