"""A model repository that changes while a server runs: versions staged aside and moved in,
plus the HTTP calls the repository tests share."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from scripts.launch import ServerProcess
from tests.onnx_models import random_model
from tests.service.expected import Expected

MODEL = "rnn"
HIDDEN = {"1": 16, "2": 8, "3": 12}  # every version a different state size
FEATURES = 2
TOL = 1e-5


def stage(root: Path, version: str) -> Path:
    """Write `rnn/<version>` beside the repository, then move it in whole (one rename), as an
    operator should: a server never sees a half-copied version."""
    staging = root.parent / f"staging-{version}"
    made = random_model(
        staging,
        name=MODEL,
        version=version,
        n_features=FEATURES,
        hidden_size=HIDDEN[version],
        seed=10 + int(version),
    )
    target = root / MODEL / version
    target.parent.mkdir(parents=True, exist_ok=True)
    made.rename(target)
    return target


def repository(tmp_path: Path, *versions: str) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    for version in versions:
        stage(root, version)
    return root


def series(steps: int, seed: int) -> np.ndarray:
    """Raw inputs [T, F], float32-exact so the server and the reference see the same."""
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 1.0, (steps, FEATURES)).astype(np.float32).astype(np.float64)


def reference(root: Path, version: str, raw: np.ndarray) -> np.ndarray:
    return Expected(root / MODEL / version).run(raw)[0]


def create(server: ServerProcess, version: str | None = None, **headers: str) -> dict[str, Any]:
    body = {"model": MODEL} if version is None else {"model": MODEL, "version": version}
    r = httpx.post(f"{server.url}/v1/sessions", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


def step(server: ServerProcess, sid: str, chunk: np.ndarray, at: int) -> httpx.Response:
    body = {"inputs": chunk.tolist(), "step": at}
    return httpx.post(f"{server.url}/v1/sessions/{sid}/steps", json=body, timeout=30)


def index(server: ServerProcess, ready: bool | None = None, **headers: str) -> dict[str, Any]:
    body = {} if ready is None else {"ready": ready}
    r = httpx.post(f"{server.url}/v2/repository/index", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return {entry["version"]: entry for entry in r.json() if entry["name"] == MODEL}


def load(server: ServerProcess, **headers: str) -> httpx.Response:
    return httpx.post(f"{server.url}/v2/repository/models/{MODEL}/load", headers=headers)


def wait_ready(server: ServerProcess, version: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll the index until `version` is READY (never a blind sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = index(server).get(version)
        if entry is not None and entry["state"] == "READY":
            return entry
        time.sleep(0.05)
    raise AssertionError(f"version {version} not READY in {timeout}s: {index(server)}")
