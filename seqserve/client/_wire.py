"""What the client sends and reads, free of I/O: JSON bodies, arrays, paths, URLs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import numpy as np
import orjson

Array = np.ndarray
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


def encode(body: Any) -> bytes:
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def decode(content: bytes) -> Any:
    if not content:
        return None
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return {"detail": content[:200].decode("utf-8", "replace")}


def steps(inputs: Any) -> Array:
    """[T, F] float64 from a nested list or array; a 1-D input is one timestep of F features."""
    x = np.asarray(inputs, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"inputs must be [T, F] with T >= 1, got shape {x.shape}")
    return x


def outputs(values: Any) -> Array:
    return np.asarray(values, dtype=np.float64)


def session_path(session_id: str, tail: str = "") -> str:
    return f"/v1/sessions/{quote(session_id, safe='')}{tail}"


def base_urls(base_url: str | Sequence[str]) -> list[str]:
    urls = [base_url] if isinstance(base_url, str) else list(base_url)
    if not urls:
        raise ValueError("give at least one base URL")
    return [u.rstrip("/") for u in urls]


def ws_url(base: str, session_id: str) -> str:
    scheme, rest = base.split("://", 1)
    return (
        ("wss" if scheme == "https" else "ws") + "://" + rest + session_path(session_id, "/stream")
    )


def create_body(
    model: str | None,
    version: str | None,
    idle_ttl_s: float | None,
    ttl_s: float | None,
    state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    given: dict[str, Any] = {
        "model": model,
        "version": version,
        "idle_ttl_s": idle_ttl_s,
        "ttl_s": ttl_s,
    }
    body = {k: v for k, v in given.items() if v is not None}
    if state is not None:
        body["state"] = state
    return body


def predict_body(model_version: str | None, sequences: Any, horizon: int | None) -> dict[str, Any]:
    seqs = [steps(s) for s in sequences] if not isinstance(sequences, np.ndarray) else sequences
    body: dict[str, Any] = {"inputs": seqs}
    if model_version is not None:
        body["version"] = model_version
    if horizon is not None:
        body["horizon"] = horizon
    return body
