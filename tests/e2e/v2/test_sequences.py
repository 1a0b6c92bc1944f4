"""Triton's sequence-batcher scenarios, ported to seqserve with the stock tritonclient.

Triton's own list (qa/L0_sequence_batcher): simple and length-1 sequences, missing START,
missing correlation id, batch > 1, a reused id, idle timeout, many interleaved sequences from
threads, and (seqserve's) behaviour at the session cap. Outputs equal the NumPy reference.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from scripts.launch import ServerProcess
from tests.e2e.v2.conftest import IDLE_TTL_S, KEYS, MAX_SESSIONS
from tests.e2e.v2.helpers import (
    TRITON_ERROR,
    assert_matches,
    client,
    data_input,
    reference,
    run_sequence,
    series,
    step,
)

pytestmark = pytest.mark.e2e


def _no_start(seq_id: int | str, model: str = "multi") -> str:
    return (
        f"inference request for sequence {seq_id} to model '{model}' must specify the START "
        "flag on the first request of the sequence"
    )


def _refused(call: Any, status: str, message: str) -> None:
    with pytest.raises(TRITON_ERROR) as caught:
        call()
    assert caught.value.status() == status
    assert message in caught.value.message()


def test_simple_and_length_one_sequences(server: ServerProcess, repo: Path) -> None:
    triton = client(server)
    raw = series(8, 3, seed=30)
    assert_matches(run_sequence(triton, "multi", raw, 7001, [3]), reference(repo, "multi", raw))
    one = raw[:1]
    got = step(triton, "multi", one, 7002, start=True, end=True)  # START+END: length 1
    assert_matches(got, reference(repo, "multi", one))
    # after END the id is free: continuing is an error, a new START is a fresh sequence
    _refused(lambda: step(triton, "multi", one, 7002), "400", _no_start(7002))
    assert_matches(
        step(triton, "multi", one, 7002, start=True, end=True), reference(repo, "multi", one)
    )


def test_missing_start_is_refused(server: ServerProcess) -> None:
    triton = client(server)
    chunk = series(2, 3, seed=31)
    for seq_id in (7101, "never-started"):
        _refused(lambda s=seq_id: step(triton, "multi", chunk, s), "400", _no_start(seq_id))
        _refused(lambda s=seq_id: step(triton, "multi", chunk, s, end=True), "400", "START")


def test_missing_correlation_id_is_refused(server: ServerProcess) -> None:
    # tritonclient drops the flags when sequence_id is 0, so speak the protocol directly
    x = {"name": "x", "datatype": "FP32", "shape": [1, 1, 3], "data": [0.1, 0.2, 0.3]}
    message = "inference request to model 'multi' must specify a non-zero or non-empty"
    for params in (
        {"sequence_start": True},
        {"sequence_id": 0, "sequence_end": True},
        {"sequence_id": "", "sequence_start": True, "sequence_end": True},
    ):
        body = {"inputs": [x], "parameters": params}
        response = httpx.post(f"{server.url}/v2/models/multi/infer", json=body)
        assert response.status_code == 400
        assert message in response.json()["error"]
    assert httpx.post(f"{server.url}/v2/models/multi/infer", json={"inputs": [x]}).is_success


def test_batch_larger_than_one_in_a_sequence_is_refused(server: ServerProcess) -> None:
    triton = client(server)
    two = data_input(np.stack([series(2, 3, seed=32)] * 2), True)
    message = "must specify batch-size 1 due to requirements of sequence batcher"
    infer = triton.infer
    _refused(lambda: infer("multi", [two], sequence_id=7201, sequence_start=True), "400", message)
    # nothing was started by the refused request
    _refused(lambda: step(triton, "multi", series(1, 3, 0), 7201), "400", _no_start(7201))


def test_reused_id_restarts_the_sequence(server: ServerProcess, repo: Path) -> None:
    triton = client(server)
    first, second = series(5, 3, seed=33), series(4, 3, seed=34)
    step(triton, "multi", first, 7301, start=True)  # never ended
    got = run_sequence(triton, "multi", second, 7301, [2])  # START again: fresh state
    assert_matches(got, reference(repo, "multi", second))
    # integer 7301 and string "7301" are different sequences, as in Triton
    step(triton, "multi", first, "7301", start=True)
    _refused(lambda: step(triton, "multi", first, 7301), "400", _no_start(7301))
    assert_matches(
        step(triton, "multi", second, "7301", start=True, end=True),
        reference(repo, "multi", second),
    )


def test_idle_sequence_expires(idle_server: ServerProcess, repo: Path) -> None:
    triton = client(idle_server)
    raw = series(4, 3, seed=35)
    step(triton, "multi", raw[:2], 7401, start=True)
    idle_since = time.monotonic()  # an upper bound: the server saw 7401 before this
    busy = step(triton, "multi", raw[:2], 7402, start=True)
    # keep 7402 busy, one request after another, until 7401 has idled past its TTL: 7402 is
    # then never idle for more than a request or two, whatever the machine's load
    while time.monotonic() - idle_since < IDLE_TTL_S * 1.2:
        busy = step(triton, "multi", raw[:1], 7402)
    _refused(lambda: step(triton, "multi", raw[2:], 7401), "400", _no_start(7401))
    assert busy.shape == (1, 3)
    step(triton, "multi", raw[:1], 7402, end=True)  # the busy one is still alive
    restarted = run_sequence(triton, "multi", raw, 7401, [1])
    assert_matches(restarted, reference(repo, "multi", raw))


def test_many_interleaved_sequences_from_threads(server: ServerProcess, repo: Path) -> None:
    raws = {k: series(int(6 + k % 5), 3, seed=100 + k) for k in range(24)}

    def worker(ids: list[int]) -> dict[int, np.ndarray]:
        triton = client(server)
        outputs: dict[int, list[np.ndarray]] = {k: [] for k in ids}
        cursor = dict.fromkeys(ids, 0)
        while any(cursor[k] < len(raws[k]) for k in ids):  # round-robin over my sequences
            for k in ids:
                lo = cursor[k]
                if lo >= len(raws[k]):
                    continue
                hi = min(len(raws[k]), lo + 1 + k % 3)
                seq_id = f"thread-seq-{k}" if k % 2 else 8000 + k
                outputs[k].append(
                    step(triton, "multi", raws[k][lo:hi], seq_id, lo == 0, hi == len(raws[k]))
                )
                cursor[k] = hi
        # tritonclient closes itself again in __del__, on the hub of whichever thread collects
        # it: close it here, on its own thread, and make that second close a no-op
        triton.close()
        triton.close = lambda: None
        return {k: np.concatenate(parts) for k, parts in outputs.items()}

    groups = [list(range(t, 24, 8)) for t in range(8)]
    with ThreadPoolExecutor(len(groups)) as pool:
        results = [got for part in pool.map(worker, groups) for got in part.items()]
    assert len(results) == len(raws)
    for k, got in results:
        assert_matches(got, reference(repo, "multi", raws[k]))


def test_behaviour_at_the_session_cap(capped_server: ServerProcess) -> None:
    triton = client(capped_server)
    alpha, beta = ({"X-API-Key": key} for key in KEYS)
    chunk = series(2, 3, seed=36)
    _refused(lambda: step(triton, "multi", chunk, 1, start=True), "401", "API key")
    for seq_id in range(MAX_SESSIONS):
        step(triton, "multi", chunk, seq_id + 1, start=True, headers=alpha)
    with pytest.raises(TRITON_ERROR) as full:
        step(triton, "multi", chunk, 99, start=True, headers=beta)
    assert full.value.status() == "429"
    assert "session cap reached" in full.value.message()
    response = httpx.post(
        f"{capped_server.url}/v2/models/multi/infer",
        json={"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1, 3], "data": [1] * 3}],
              "parameters": {"sequence_id": 99, "sequence_start": True}},
        headers=beta,
    )  # fmt: skip
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    # live sequences keep working at the cap, and stateless requests are not capped
    step(triton, "multi", chunk, 1, headers=alpha)
    stateless = triton.infer("multi", [data_input(chunk[None], True)], headers=dict(beta))
    assert stateless.as_numpy("y").shape == (1, 2, 3)
    # callers are isolated: beta's sequence 1 is not alpha's
    _refused(lambda: step(triton, "multi", chunk, 1, headers=beta), "400", _no_start(1))
    step(triton, "multi", chunk, 1, end=True, headers=alpha)  # frees a slot
    step(triton, "multi", chunk, 99, start=True, end=True, headers=beta)
    for seq_id in (2, 3):
        step(triton, "multi", chunk, seq_id, end=True, headers=alpha)
