"""The portable state document: a session's state as JSON, exact to the bit."""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

import numpy as np
from seqserve.service.errors import BadInput
from seqserve.service.runtime.layout import MAX_STEP, Layout, StateRows

STATE_FORMAT = "seqserve.state/v1"


def _checksum(model: str, version: str, step: int, blobs: list[bytes]) -> str:
    digest = hashlib.sha256(f"{model}\0{version}\0{step}".encode())
    for blob in blobs:
        digest.update(len(blob).to_bytes(8, "little"))
        digest.update(blob)
    return digest.hexdigest()


def _blobs(state: StateRows) -> list[bytes]:
    arrays = [*state.tensors, state.prev_x, state.last_y]
    return [np.ascontiguousarray(a[0]).astype(a.dtype.newbyteorder("<")).tobytes() for a in arrays]


def encode_state(
    model: str, version: str, step: int, names: list[str], state: StateRows
) -> dict[str, Any]:
    """One session's state (a StateRows of batch 1) as a JSON-ready document."""
    blobs = _blobs(state)
    return {
        "format": STATE_FORMAT,
        "model": model,
        "version": version,
        "step": step,
        "tensors": {
            name: {"shape": list(t.shape[1:]), "data": base64.b64encode(blob).decode()}
            for name, t, blob in zip(names, state.tensors, blobs, strict=False)
        },
        "prev_x": state.prev_x[0].tolist(),
        "last_y": state.last_y[0].tolist(),
        "checksum": _checksum(model, version, step, blobs),
    }


def _floats(doc: dict[str, Any], key: str, n: int) -> np.ndarray:
    value = doc.get(key)
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise BadInput(f"state.{key} must be a list of {n} numbers") from None
    if arr.shape != (n,) or not np.isfinite(arr).all():
        raise BadInput(f"state.{key} must be {n} finite numbers", expected_length=n)
    return arr[None, :]


def state_target(doc: dict[str, Any]) -> tuple[str, str]:
    """The (model, version) a state document belongs to."""
    model, version = doc.get("model"), doc.get("version")
    if doc.get("format") != STATE_FORMAT or not isinstance(model, str):
        raise BadInput(f"state must be a {STATE_FORMAT!r} document naming its model")
    if not isinstance(version, str):
        raise BadInput("state.version must be a string")
    return model, version


def decode_state(doc: dict[str, Any], names: list[str], layout: Layout) -> tuple[int, StateRows]:
    """Validate a state document against a model version's layout -> (step, state)."""
    if doc.get("format") != STATE_FORMAT:
        raise BadInput(f"state.format must be {STATE_FORMAT!r}")
    step = doc.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step <= MAX_STEP:
        # the checksum is anyone's to recompute: the bound is what keeps step JSON-safe
        raise BadInput(f"state.step must be an integer in [0, {MAX_STEP}]", max_step=MAX_STEP)
    tensors_doc = doc.get("tensors")
    if not isinstance(tensors_doc, dict) or sorted(tensors_doc) != sorted(names):
        raise BadInput(f"state.tensors must hold exactly {names}", expected_tensors=names)
    tensors = []
    for name, (layers, size) in zip(names, layout.tensor_shapes, strict=True):
        entry = tensors_doc[name]
        data = entry.get("data") if isinstance(entry, dict) else None
        try:
            raw = base64.b64decode(data, validate=True) if isinstance(data, str) else b""
        except binascii.Error:
            raw = b""
        if len(raw) != 4 * layers * size:
            raise BadInput(
                f"state.tensors.{name} must be base64 of {layers}x{size} float32",
                expected_shape=[layers, size],
            )
        arr = np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(1, layers, size)
        if not np.isfinite(arr).all():
            raise BadInput(f"state.tensors.{name} holds NaN or Inf")
        tensors.append(arr)
    state = StateRows(
        tensors,
        _floats(doc, "prev_x", layout.n_features),
        _floats(doc, "last_y", layout.n_outputs),
    )
    expected = _checksum(str(doc.get("model")), str(doc.get("version")), step, _blobs(state))
    if doc.get("checksum") != expected:
        raise BadInput("state.checksum does not match the document: it was altered or corrupted")
    return step, state
