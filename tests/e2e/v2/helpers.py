"""tritonclient calls and NumPy reference outputs for the V2 end-to-end tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from scripts.launch import ServerProcess
from tests.service.expected import Expected
from tests.service.v2.support import require

http = require("tritonclient.http")
TRITON_ERROR = require("tritonclient.utils").InferenceServerException


def address(server: ServerProcess) -> str:
    return server.url.removeprefix("http://")


def client(server: ServerProcess) -> Any:
    return http.InferenceServerClient(address(server), network_timeout=30.0)


def series(steps: int, features: int, seed: int) -> np.ndarray:
    """Raw inputs [T, F], already float32-exact so the server and reference see the same."""
    rng = np.random.default_rng(seed)
    return rng.normal(1.0, 2.0, (steps, features)).astype(np.float32).astype(np.float64)


def co2_series(steps: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    raw = 315 + 0.03 * np.arange(steps) + rng.normal(0, 0.3, steps)
    return raw[:, None].astype(np.float32).astype(np.float64)


def reference(repo: Path, model: str, raw: np.ndarray, version: str = "1") -> np.ndarray:
    """The NumPy reference LSTM/GRU (plus preprocessing) over a whole sequence: [T, O]."""
    return Expected(repo / model / version).run(raw)[0]


def assert_matches(got: np.ndarray, want: np.ndarray) -> None:
    """Within 1e-5 of the reference, plus the FP32 rounding of the wire format."""
    np.testing.assert_allclose(got, want, rtol=3e-7, atol=1e-5)


def data_input(values: np.ndarray, binary: bool, name: str = "x") -> Any:
    tensor = http.InferInput(name, list(values.shape), "FP32")
    tensor.set_data_from_numpy(values.astype(np.float32), binary_data=binary)
    return tensor


def step(
    triton: Any,
    model: str,
    chunk: np.ndarray,
    seq_id: int | str,
    start: bool = False,
    end: bool = False,
    binary: bool = True,
    compression: str | None = None,
    named_outputs: bool = True,
    headers: dict[str, str] | None = None,
) -> np.ndarray:
    """One sequence request with `chunk` [T, F]; its outputs [T, O]."""
    outputs = [http.InferRequestedOutput("y", binary_data=binary)] if named_outputs else None
    result = triton.infer(
        model,
        [data_input(chunk[None], binary)],
        outputs=outputs,
        sequence_id=seq_id,
        sequence_start=start,
        sequence_end=end,
        request_compression_algorithm=compression,
        response_compression_algorithm=compression,
        headers=dict(headers or {}),  # tritonclient adds its own headers to this dict
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
