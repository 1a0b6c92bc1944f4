"""The stock tritonclient.grpc (sync, aio and streaming) against a real server.

Outputs equal the native v1 stateless predict over the whole sequence (and the NumPy
reference); a stream carries many sequences at once, answers its errors as messages and
stays open; a client that goes away mid-stream loses no applied step and harms nothing.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from scripts.launch import ServerProcess, free_port
from tests.e2e.grpc.helpers import (
    client,
    data_input,
    grpc_address,
    grpcclient,
    refused,
    run_sequence,
    step,
    v1_predict,
)
from tests.e2e.v2.helpers import assert_matches, reference, series
from tests.service.v2.support import require

pytestmark = pytest.mark.e2e
pb = grpcclient.service_pb2
pb_grpc = grpcclient.service_pb2_grpc


def test_health_metadata_config_and_statistics(grpc_server: ServerProcess) -> None:
    triton = client(grpc_server)
    assert triton.is_server_live()
    assert triton.is_server_ready()
    meta = triton.get_server_metadata(as_json=True)
    assert meta["name"] == "seqserve"
    assert {"sequence", "sequence(string_id)", "statistics"} <= set(meta["extensions"])
    model = triton.get_model_metadata("multi", as_json=True)
    assert model["inputs"] == [{"name": "x", "datatype": "FP32", "shape": ["-1", "-1", "3"]}]
    assert [o["name"] for o in model["outputs"]] == ["y"]  # no state tensors: implicit
    assert triton.get_model_metadata("diffed", "1").versions == ["1"]
    assert triton.is_model_ready("diffed", "2")
    assert not triton.is_model_ready("nope")
    config = triton.get_model_config("multi").config
    states = config.sequence_batching.state
    assert [(s.input_name, s.output_name) for s in states] == [("h0", "hn"), ("c0", "cn")]
    assert list(states[0].dims) == [2, 8]
    assert config.max_batch_size > 0
    index = {(m.name, m.version, m.state) for m in triton.get_model_repository_index().models}
    assert ("diffed", "2", "READY") in index
    refused(lambda: triton.get_model_metadata("nope"), "NOT_FOUND", "unknown model")
    before = triton.get_inference_statistics("gru", "1").model_stats[0]
    triton.infer("gru", [data_input(series(3, 2, seed=5)[None])])
    after = triton.get_inference_statistics("gru", "1").model_stats[0]
    assert after.inference_count == before.inference_count + 1
    assert after.inference_stats.success.count == before.inference_stats.success.count + 1


def test_unary_sequences_equal_v1_predict(grpc_server: ServerProcess, repo: Path) -> None:
    triton = client(grpc_server)
    raw = series(12, 3, seed=40)
    want = v1_predict(grpc_server, "multi", raw)
    assert_matches(want, reference(repo, "multi", raw))
    assert_matches(run_sequence(triton, "multi", raw, "unary-string-id", [1, 5, 6]), want)
    assert_matches(
        run_sequence(triton, "multi", raw, 2**63 - 1, [4]), want
    )  # int64 max (tritonclient's type)


def test_aio_client_sequence_equals_v1_predict(grpc_server: ServerProcess) -> None:
    aio = require("tritonclient.grpc.aio")
    raw = series(7, 3, seed=41)

    async def run() -> np.ndarray:
        triton = aio.InferenceServerClient(grpc_address(grpc_server))
        try:
            assert await triton.is_server_ready()
            parts = []
            for lo, hi in ((0, 3), (3, 7)):
                result = await triton.infer(
                    "multi",
                    [data_input(raw[None, lo:hi])],
                    sequence_id="aio-seq",
                    sequence_start=lo == 0,
                    sequence_end=hi == 7,
                )
                parts.append(result.as_numpy("y")[0].astype(np.float64))
            return np.concatenate(parts)
        finally:
            await triton.close()

    assert_matches(asyncio.run(run()), v1_predict(grpc_server, "multi", raw))


def _collect(triton: Any) -> queue.Queue[tuple[Any, Any]]:
    answers: queue.Queue[tuple[Any, Any]] = queue.Queue()
    triton.start_stream(callback=lambda result, error: answers.put((result, error)))
    return answers


def test_interleaved_sequences_on_one_stream_equal_v1_predict(
    grpc_server: ServerProcess, repo: Path
) -> None:
    raws = {k: series(5 + k, 3, seed=200 + k) for k in range(8)}
    ids: dict[int, int | str] = {k: 9000 + k if k % 2 else f"stream-seq-{k}" for k in range(8)}
    triton = client(grpc_server)
    answers = _collect(triton)
    sent: dict[str, tuple[int, int]] = {}  # request id -> (sequence, first step)
    cursor = dict.fromkeys(raws, 0)
    while any(cursor[k] < len(raws[k]) for k in raws):  # round-robin: sequences interleave
        for k, raw in raws.items():
            lo = cursor[k]
            if lo >= len(raw):
                continue
            hi = min(len(raw), lo + 1 + k % 3)
            request_id = f"r{len(sent)}"
            triton.async_stream_infer(
                "multi",
                [data_input(raw[None, lo:hi])],
                request_id=request_id,
                sequence_id=ids[k],
                sequence_start=lo == 0,
                sequence_end=hi == len(raw),
            )
            sent[request_id] = (k, lo)
            cursor[k] = hi
    triton.stop_stream()  # waits for every answer
    parts: dict[int, dict[int, np.ndarray]] = {k: {} for k in raws}
    for _ in range(len(sent)):
        result, error = answers.get_nowait()
        assert error is None, error
        k, lo = sent.pop(result.get_response().id)
        parts[k][lo] = result.as_numpy("y")[0].astype(np.float64)
    assert not sent
    assert answers.empty()
    for k, raw in raws.items():
        got = np.concatenate([parts[k][lo] for lo in sorted(parts[k])])
        assert_matches(got, v1_predict(grpc_server, "multi", raw))
        assert_matches(got, reference(repo, "multi", raw))


def test_bad_request_on_a_stream_is_an_error_answer_and_the_stream_stays_open(
    grpc_server: ServerProcess, repo: Path
) -> None:
    triton = client(grpc_server)
    answers = _collect(triton)
    raw = series(4, 3, seed=42)
    wrong = grpcclient.InferInput("nope", [1, 2, 3], "FP32")
    wrong.set_data_from_numpy(raw[None, :2].astype(np.float32))
    send = triton.async_stream_infer
    send("multi", [wrong], request_id="bad-input", sequence_id=9300, sequence_start=True)
    send("multi", [data_input(raw[None, :2])], request_id="no-start", sequence_id=9301)
    send("multi", [data_input(raw[None, :2])], sequence_id=9300, sequence_start=True)
    send("missing-model", [data_input(raw[None, :2])], request_id="no-model")
    send("multi", [data_input(raw[None, 2:])], sequence_id=9300, sequence_end=True)
    triton.stop_stream()
    got = [answers.get_nowait() for _ in range(5)]
    errors = " | ".join(str(error) for _, error in got if error is not None)
    assert errors.count(" | ") == 2
    assert "unexpected inference input 'nope'" in errors
    assert "sequence 9301 to model 'multi' must specify the START flag" in errors
    assert "unknown model: 'missing-model'" in errors
    outputs = [result.as_numpy("y")[0] for result, error in got if error is None]
    assert_matches(np.concatenate(outputs).astype(np.float64), reference(repo, "multi", raw))


def _request(raw: np.ndarray, seq_id: int, start: bool = False, rid: str = "") -> Any:
    request = pb.ModelInferRequest(model_name="multi", id=rid)
    request.inputs.add(name="x", datatype="FP32", shape=[1, *raw.shape])
    request.raw_input_contents.append(raw.astype(np.float32).tobytes())
    request.parameters["sequence_id"].int64_param = seq_id
    request.parameters["sequence_start"].bool_param = start
    return request


def test_a_client_gone_mid_stream_loses_no_applied_step(
    grpc_server: ServerProcess, repo: Path
) -> None:
    raw = series(6, 3, seed=43)
    outbox: queue.Queue[Any] = queue.Queue()

    def requests() -> Iterator[Any]:
        while (item := outbox.get()) is not None:
            yield item

    with grpc.insecure_channel(grpc_address(grpc_server)) as channel:
        call = pb_grpc.GRPCInferenceServiceStub(channel).ModelStreamInfer(requests())
        outbox.put(_request(raw[:2], 9400, start=True, rid="a"))
        first = next(call)
        outbox.put(_request(raw[2:4], 9400, rid="b"))
        second = next(call)
        for k in range(20):  # more in flight as the client goes away
            outbox.put(_request(raw[:1], 9401 + k, start=True))
        call.cancel()
        outbox.put(None)
    assert (first.error_message, second.error_message) == ("", "")
    assert [first.infer_response.id, second.infer_response.id] == ["a", "b"]
    answered = [
        np.frombuffer(a.infer_response.raw_output_contents[0], np.float32).reshape(-1, 3)
        for a in (first, second)
    ]
    # the server is healthy and the sequence goes on where the lost client left it
    triton = client(grpc_server)
    assert triton.is_server_ready()
    rest = step(triton, "multi", raw[4:], 9400, end=True)
    got = np.concatenate([*answered, rest.astype(np.float32)]).astype(np.float64)
    assert_matches(got, reference(repo, "multi", raw))
    answers = _collect(triton)  # and a new stream works
    triton.async_stream_infer("multi", [data_input(raw[None])], request_id="after")
    triton.stop_stream()
    result, error = answers.get_nowait()
    assert error is None
    assert result.get_response().id == "after"


def test_repository_load_and_unload_over_grpc(repo_copy: Path, tmp_path: Path) -> None:
    """RepositoryModelUnload takes a model out of service, RepositoryModelLoad brings it back."""
    env = {"SEQSERVE_GRPC_PORT": str(free_port())}
    server = ServerProcess.seqserve(repo_copy, tmp_path, **env).start()
    try:
        triton = client(server)
        assert triton.is_model_ready("gru", "1")
        triton.unload_model("gru")
        assert not triton.is_model_ready("gru", "1")
        refused(
            lambda: triton.infer("gru", [data_input(series(2, 2, seed=1)[None])]),
            "NOT_FOUND",
            "gru",
        )
        triton.load_model("gru")
        assert triton.is_model_ready("gru", "1")
        out = triton.infer("gru", [data_input(series(2, 2, seed=1)[None])]).as_numpy("y")
        assert out.shape == (1, 2, 1)
    finally:
        server.stop()


def test_sequence_step_makes_grpc_retries_exactly_once(grpc_server: ServerProcess) -> None:
    """The V2 `sequence_step` extension over gRPC: a resent request is answered from the
    stored reply, a stale index is refused, and the reply says the sequence's step."""
    triton = client(grpc_server)
    raw = series(5, 2, seed=11)

    def send(chunk: np.ndarray, at: int, start: bool = False) -> Any:
        return triton.infer(
            "gru",
            [data_input(chunk[None])],
            sequence_id=4242,
            sequence_start=start,
            parameters={"sequence_step": at},
        )

    first = send(raw[:3], 0, start=True)
    params = first.get_response().parameters
    assert params["sequence_step"].int64_param == 3
    again = send(raw[:3], 0, start=False)  # the answer was "lost": the client resends
    assert again.get_response().parameters["sequence_replayed"].bool_param
    np.testing.assert_array_equal(again.as_numpy("y"), first.as_numpy("y"))
    refused(lambda: send(raw[3:], 1), "INVALID_ARGUMENT", "current step 3")  # as Triton
    rest = send(raw[3:], 3)
    assert rest.get_response().parameters["sequence_step"].int64_param == 5
    whole = np.concatenate([first.as_numpy("y")[0], rest.as_numpy("y")[0]])
    assert_matches(whole, v1_predict(grpc_server, "gru", raw))
