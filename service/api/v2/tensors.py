"""V2 tensors on the wire: datatypes, JSON `data` and binary tensor data (all little-endian)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from math import prod
from typing import Any

import numpy as np
from seqserve.service.api.v2.errors import V2Error

Array = np.ndarray

DTYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(code)
    for name, code in {
        "BOOL": "?",
        "UINT8": "u1",
        "UINT16": "<u2",
        "UINT32": "<u4",
        "UINT64": "<u8",
        "INT8": "i1",
        "INT16": "<i2",
        "INT32": "<i4",
        "INT64": "<i8",
        "FP16": "<f2",
        "FP32": "<f4",
        "FP64": "<f8",
    }.items()
}
_MAX_DEPTH = 64


@dataclass(frozen=True)
class Tensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    array: Array  # shaped, in the wire dtype (BYTES: an object array of bytes)


def decode(spec: dict[str, Any], data: list[Any] | None, raw: bytes | None) -> Tensor:
    """One input tensor from its JSON `data` or its binary bytes, checked against its shape."""
    name, datatype, shape = spec["name"], spec["datatype"], spec["shape"]
    dtype = DTYPES.get(datatype)
    if dtype is None:
        raise V2Error(f"input '{name}': unsupported datatype '{datatype}'")
    count = prod(shape)
    if raw is not None:
        if len(raw) != count * dtype.itemsize:
            raise V2Error(
                f"input byte size mismatch for input '{name}'. "
                f"Expected {count * dtype.itemsize}, got {len(raw)}"
            )
        array = np.frombuffer(raw, dtype=dtype)
    else:
        flat: list[Any] = []
        _flatten(data, flat, 0)
        if len(flat) != count:
            raise V2Error(
                f"unexpected number of elements in 'data' of input '{name}': "
                f"shape {list(shape)} holds {count}, got {len(flat)}"
            )
        array = _from_json(name, flat, dtype)
    return Tensor(name, datatype, tuple(shape), array.reshape(shape))


def _flatten(data: Any, out: list[Any], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise V2Error("'data' is nested too deeply")
    for item in data:
        if isinstance(item, list):
            _flatten(item, out, depth + 1)
        else:
            out.append(item)


def _from_json(name: str, flat: list[Any], dtype: np.dtype[Any]) -> Array:
    if dtype.kind == "b":
        ok = all(type(v) is bool for v in flat)
    elif dtype.kind == "f":
        ok = all(type(v) is float or type(v) is int for v in flat)
    else:
        ok = all(type(v) is int for v in flat)
    if not ok:
        raise V2Error(f"unable to parse 'data' of input '{name}': not all values are {dtype.name}")
    try:
        with np.errstate(over="raise"):
            return np.array(flat, dtype=dtype)
    except (OverflowError, FloatingPointError):
        raise V2Error(
            f"'data' of input '{name}' holds values out of range for {dtype.name}"
        ) from None


def wire_bytes(array: Array, datatype: str) -> bytes:
    """Binary tensor data: raw little-endian values, or BYTES as 4-byte-length-prefixed items."""
    if datatype == "BYTES":
        return b"".join(struct.pack("<I", len(item)) + item for item in array.ravel())
    return np.ascontiguousarray(array, dtype=DTYPES[datatype]).tobytes()


def json_data(array: Array, datatype: str) -> Any:
    """JSON `data`: the values flattened in row-major order."""
    if datatype == "BYTES":
        return [item.decode("utf-8", "replace") for item in array.ravel()]
    return np.ascontiguousarray(array, dtype=DTYPES[datatype]).ravel()
