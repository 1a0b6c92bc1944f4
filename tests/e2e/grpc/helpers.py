"""tritonclient.grpc calls for the gRPC end-to-end tests (references: tests/e2e/v2/helpers.py)."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

from scripts.launch import ServerProcess
from tests.service.v2.support import require

grpcclient = require("tritonclient.grpc")
TRITON_ERROR = require("tritonclient.utils").InferenceServerException


def grpc_address(server: ServerProcess) -> str:
    return "127.0.0.1:" + server.env["SEQSERVE_GRPC_PORT"]


def client(server: ServerProcess) -> Any:
    return grpcclient.InferenceServerClient(grpc_address(server))


def data_input(values: np.ndarray, name: str = "x") -> Any:
    tensor = grpcclient.InferInput(name, list(values.shape), "FP32")
    tensor.set_data_from_numpy(values.astype(np.float32))
    return tensor


def step(
    triton: Any,
    model: str,
    chunk: np.ndarray,
    seq_id: int | str,
    start: bool = False,
    end: bool = False,
    headers: dict[str, str] | None = None,
) -> np.ndarray:
    """One unary sequence request with `chunk` [T, F]; its outputs [T, O]."""
    result = triton.infer(
        model,
        [data_input(chunk[None])],
        outputs=[grpcclient.InferRequestedOutput("y")],
        sequence_id=seq_id,
        sequence_start=start,
        sequence_end=end,
        headers=headers,
    )
    y: np.ndarray = result.as_numpy("y")
    assert y.dtype == np.float32
    return y[0].astype(np.float64)


def run_sequence(
    triton: Any, model: str, raw: np.ndarray, seq_id: int | str, cuts: list[int], **kw: Any
) -> np.ndarray:
    """Feed raw [T, F] as one sequence cut at `cuts` (START first, END last): outputs [T, O]."""
    bounds = [0, *cuts, len(raw)]
    parts = []
    for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        last = k == len(bounds) - 2
        parts.append(step(triton, model, raw[lo:hi], seq_id, k == 0, last, **kw))
    return np.concatenate(parts)


def v1_predict(server: ServerProcess, model: str, raw: np.ndarray) -> np.ndarray:
    """The native v1 stateless predict over the whole sequence [T, F]: outputs [T, O]."""
    response = httpx.post(
        f"{server.url}/v1/models/{model}/predict", json={"inputs": [raw.tolist()]}, timeout=30
    )
    response.raise_for_status()
    return np.asarray(response.json()["outputs"][0], dtype=np.float64)


def refused(call: Any, code: str, message: str) -> None:
    """`call` fails with gRPC status `code` (e.g. "INVALID_ARGUMENT") and `message` in it."""
    with pytest.raises(TRITON_ERROR) as caught:
        call()
    assert caught.value.status() == f"StatusCode.{code}", caught.value
    assert message in caught.value.message()
