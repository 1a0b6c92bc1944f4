"""Triton's sequence-batcher scenarios over gRPC, with the stock tritonclient.grpc.

The same list as tests/e2e/v2/test_sequences.py (qa/L0_sequence_batcher): simple and length-1
sequences, missing START, missing correlation id, batch > 1, a reused id, idle timeout, many
interleaved sequences from threads and the session cap. Outputs equal the NumPy reference.
"""

from __future__ import annotations

import queue
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from scripts.launch import ServerProcess
from tests.e2e.grpc.conftest import IDLE_TTL_S, KEYS, MAX_SESSIONS
from tests.e2e.grpc.helpers import (
    client,
    data_input,
    grpc_address,
    grpcclient,
    refused,
    run_sequence,
    step,
)
from tests.e2e.v2.helpers import assert_matches, reference, series

pytestmark = pytest.mark.e2e
pb = grpcclient.service_pb2
pb_grpc = grpcclient.service_pb2_grpc


def _no_start(seq_id: int | str, model: str = "multi") -> str:
    return (
        f"inference request for sequence {seq_id} to model '{model}' must specify the START "
        "flag on the first request of the sequence"
    )


def test_simple_and_length_one_sequences(grpc_server: ServerProcess, repo: Path) -> None:
    triton = client(grpc_server)
    raw = series(8, 3, seed=30)
    assert_matches(run_sequence(triton, "multi", raw, 7001, [3]), reference(repo, "multi", raw))
    one = raw[:1]
    got = step(triton, "multi", one, 7002, start=True, end=True)  # START+END: length 1
    assert_matches(got, reference(repo, "multi", one))
    # after END the id is free: continuing is an error, a new START is a fresh sequence
    refused(lambda: step(triton, "multi", one, 7002), "INVALID_ARGUMENT", _no_start(7002))
    assert_matches(
        step(triton, "multi", one, 7002, start=True, end=True), reference(repo, "multi", one)
    )


def test_missing_start_is_refused(grpc_server: ServerProcess) -> None:
    triton = client(grpc_server)
    chunk = series(2, 3, seed=31)
    for seq_id in (7101, "never-started"):
        refused(
            lambda s=seq_id: step(triton, "multi", chunk, s), "INVALID_ARGUMENT", _no_start(seq_id)
        )
        refused(
            lambda s=seq_id: step(triton, "multi", chunk, s, end=True), "INVALID_ARGUMENT", "START"
        )


def test_missing_correlation_id_is_refused(grpc_server: ServerProcess) -> None:
    # tritonclient drops the flags when sequence_id is 0, so build the message directly
    with grpc.insecure_channel(grpc_address(grpc_server)) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        message = "inference request to model 'multi' must specify a non-zero or non-empty"
        for params in (
            {"sequence_start": True},
            {"sequence_id": 0, "sequence_end": True},
            {"sequence_id": "", "sequence_start": True, "sequence_end": True},
        ):
            request = pb.ModelInferRequest(model_name="multi")
            x = request.inputs.add(name="x", datatype="FP32", shape=[1, 1, 3])
            x.contents.fp32_contents.extend([0.1, 0.2, 0.3])
            for key, value in params.items():
                which = {bool: "bool_param", int: "int64_param", str: "string_param"}[type(value)]
                setattr(request.parameters[key], which, value)
            with pytest.raises(grpc.RpcError) as caught:
                stub.ModelInfer(request)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert message in caught.value.details()
        plain = pb.ModelInferRequest(model_name="multi")
        plain.inputs.add(name="x", datatype="FP32", shape=[1, 1, 3]).contents.fp32_contents.extend(
            [0.1, 0.2, 0.3]
        )
        assert list(stub.ModelInfer(plain).outputs[0].shape) == [1, 1, 3]


def test_batch_larger_than_one_in_a_sequence_is_refused(grpc_server: ServerProcess) -> None:
    triton = client(grpc_server)
    two = data_input(np.stack([series(2, 3, seed=32)] * 2))
    message = "must specify batch-size 1 due to requirements of sequence batcher"
    refused(
        lambda: triton.infer("multi", [two], sequence_id=7201, sequence_start=True),
        "INVALID_ARGUMENT",
        message,
    )
    # nothing was started by the refused request
    refused(
        lambda: step(triton, "multi", series(1, 3, 0), 7201), "INVALID_ARGUMENT", _no_start(7201)
    )


def test_reused_id_restarts_the_sequence(grpc_server: ServerProcess, repo: Path) -> None:
    triton = client(grpc_server)
    first, second = series(5, 3, seed=33), series(4, 3, seed=34)
    step(triton, "multi", first, 7301, start=True)  # never ended
    got = run_sequence(triton, "multi", second, 7301, [2])  # START again: fresh state
    assert_matches(got, reference(repo, "multi", second))
    # integer 7301 and string "7301" are different sequences, as in Triton
    step(triton, "multi", first, "7301", start=True)
    refused(lambda: step(triton, "multi", first, 7301), "INVALID_ARGUMENT", _no_start(7301))
    assert_matches(
        step(triton, "multi", second, "7301", start=True, end=True),
        reference(repo, "multi", second),
    )


def test_idle_sequence_expires(idle_grpc_server: ServerProcess, repo: Path) -> None:
    triton = client(idle_grpc_server)
    raw = series(4, 3, seed=35)
    step(triton, "multi", raw[:2], 7401, start=True)
    busy = step(triton, "multi", raw[:2], 7402, start=True)
    deadline = time.monotonic() + IDLE_TTL_S * 0.5
    while time.monotonic() < deadline:  # keep 7402 busy while 7401 idles
        busy = step(triton, "multi", raw[:1], 7402)
    time.sleep(IDLE_TTL_S * 0.6)  # 7401 has now been idle for longer than its TTL
    refused(lambda: step(triton, "multi", raw[2:], 7401), "INVALID_ARGUMENT", _no_start(7401))
    assert busy.shape == (1, 3)
    step(triton, "multi", raw[:1], 7402, end=True)  # the busy one is still alive
    restarted = run_sequence(triton, "multi", raw, 7401, [1])
    assert_matches(restarted, reference(repo, "multi", raw))


def test_many_interleaved_sequences_from_threads(grpc_server: ServerProcess, repo: Path) -> None:
    raws = {k: series(int(6 + k % 5), 3, seed=100 + k) for k in range(24)}

    def worker(ids: list[int]) -> dict[int, np.ndarray]:
        triton = client(grpc_server)
        outputs: dict[int, list[np.ndarray]] = {k: [] for k in ids}
        cursor = dict.fromkeys(ids, 0)
        while any(cursor[k] < len(raws[k]) for k in ids):  # round-robin over my sequences
            for k in ids:
                lo = cursor[k]
                if lo >= len(raws[k]):
                    continue
                hi = min(len(raws[k]), lo + 1 + k % 3)
                seq_id = f"grpc-thread-seq-{k}" if k % 2 else 8000 + k
                outputs[k].append(
                    step(triton, "multi", raws[k][lo:hi], seq_id, lo == 0, hi == len(raws[k]))
                )
                cursor[k] = hi
        triton.close()
        return {k: np.concatenate(parts) for k, parts in outputs.items()}

    groups = [list(range(t, 24, 8)) for t in range(8)]
    with ThreadPoolExecutor(len(groups)) as pool:
        results = [got for part in pool.map(worker, groups) for got in part.items()]
    assert len(results) == len(raws)
    for k, got in results:
        assert_matches(got, reference(repo, "multi", raws[k]))


def test_behaviour_at_the_session_cap(capped_grpc_server: ServerProcess) -> None:
    triton = client(capped_grpc_server)
    alpha, beta = ({"x-api-key": key} for key in KEYS)
    chunk = series(2, 3, seed=36)
    refused(lambda: step(triton, "multi", chunk, 1, start=True), "UNAUTHENTICATED", "API key")
    answers: queue.Queue[tuple[Any, Any]] = queue.Queue()  # a stream without a key ends at once
    triton.start_stream(callback=lambda result, error: answers.put((result, error)))
    result, error = answers.get(timeout=30)  # refused at the start, before any request
    assert result is None
    assert "API key" in str(error)
    triton.stop_stream()
    for seq_id in range(MAX_SESSIONS):
        step(triton, "multi", chunk, seq_id + 1, start=True, headers=alpha)
    refused(
        lambda: step(triton, "multi", chunk, 99, start=True, headers=beta),
        "UNAVAILABLE",
        "session cap reached",
    )
    # live sequences keep working at the cap, and stateless requests are not capped
    step(triton, "multi", chunk, 1, headers=alpha)
    stateless = triton.infer("multi", [data_input(chunk[None])], headers=beta)
    assert stateless.as_numpy("y").shape == (1, 2, 3)
    # callers are isolated: beta's sequence 1 is not alpha's
    refused(lambda: step(triton, "multi", chunk, 1, headers=beta), "INVALID_ARGUMENT", "START")
    step(triton, "multi", chunk, 1, end=True, headers=alpha)  # frees a slot
    step(triton, "multi", chunk, 99, start=True, end=True, headers=beta)
    for seq_id in (2, 3):
        step(triton, "multi", chunk, seq_id, end=True, headers=alpha)
