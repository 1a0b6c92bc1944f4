"""The stock tritonclient.http (sync and aio) against a real server: protocol round trips.

Outputs are compared to the NumPy reference run over the same inputs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest

from scripts.launch import ServerProcess
from tests.e2e.v2.helpers import (
    address,
    assert_matches,
    client,
    co2_series,
    data_input,
    http,
    reference,
    require,
    run_sequence,
    series,
    step,
)

pytestmark = pytest.mark.e2e


def test_server_and_model_metadata(server: ServerProcess) -> None:
    triton = client(server)
    assert triton.is_server_live()
    assert triton.is_server_ready()
    meta = triton.get_server_metadata()
    assert meta["name"] == "seqserve"
    assert {"sequence", "sequence(string_id)", "binary_tensor_data"} <= set(meta["extensions"])
    assert "system_shared_memory" not in meta["extensions"]
    model = triton.get_model_metadata("multi")
    assert model["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, -1, 3]}]
    assert [o["name"] for o in model["outputs"]] == ["y"]  # no state tensors: implicit
    assert triton.get_model_metadata("diffed", "1")["versions"] == ["1"]
    assert triton.is_model_ready("diffed", "2")
    assert not triton.is_model_ready("nope")
    config = triton.get_model_config("multi")
    states = config["sequence_batching"]["state"]
    assert [(s["input_name"], s["output_name"]) for s in states] == [("h0", "hn"), ("c0", "cn")]
    assert states[0]["dims"] == [2, 8]
    index = triton.get_model_repository_index()
    assert {"name": "diffed", "version": "2", "state": "READY"} in index


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("compression", [None, "gzip", "deflate"])
def test_sequence_equals_reference(
    server: ServerProcess, repo: Path, binary: bool, compression: str | None
) -> None:
    raw = series(11, 3, seed=1)
    triton = client(server)
    got = run_sequence(
        triton, "multi", raw, f"seq-{binary}-{compression}", [1, 5, 7],
        binary=binary, compression=compression,
    )  # fmt: skip
    assert_matches(got, reference(repo, "multi", raw))


def test_default_outputs_and_differenced_model(server: ServerProcess, repo: Path) -> None:
    """No outputs named (the client asks for binary); differencing carries across requests."""
    raw = co2_series(30, seed=2)
    triton = client(server)
    got = run_sequence(triton, "diffed", raw, 424242, [1, 2, 10, 29], named_outputs=False)
    assert_matches(got, reference(repo, "diffed", raw, version="2"))


def test_aio_client_interleaves_sequences(server: ServerProcess, repo: Path) -> None:
    aio = require("tritonclient.http.aio")
    raws = [series(9, 3, seed=10 + k) for k in range(6)]

    async def one(triton: object, k: int) -> np.ndarray:
        binary, coding = (True, "gzip") if k % 2 else (False, "deflate")
        parts = []
        for lo, hi in ((0, 2), (2, 3), (3, 9)):
            tensor = data_input(raws[k][None, lo:hi], binary)
            result = await triton.infer(  # type: ignore[attr-defined]
                "multi",
                [tensor],
                outputs=[aio.InferRequestedOutput("y", binary_data=binary)],
                sequence_id=1000 + k,
                sequence_start=lo == 0,
                sequence_end=hi == 9,
                request_compression_algorithm=coding,
                response_compression_algorithm=coding,
            )
            parts.append(result.as_numpy("y")[0])
        return np.concatenate(parts)

    async def run() -> list[np.ndarray]:
        triton = aio.InferenceServerClient(address(server))
        try:
            assert await triton.is_server_ready()
            return list(await asyncio.gather(*(one(triton, k) for k in range(len(raws)))))
        finally:
            await triton.close()

    for raw, got in zip(raws, asyncio.run(run()), strict=True):
        assert_matches(got, reference(repo, "multi", raw))


def test_stateless_batch_and_explicit_state(server: ServerProcess, repo: Path) -> None:
    triton = client(server)
    raws = [series(6, 3, seed=20 + k) for k in range(3)]
    batch = np.stack(raws)
    result = triton.infer("multi", [data_input(batch, True)])  # no sequence_id: stateless
    for k, raw in enumerate(raws):
        assert_matches(result.as_numpy("y")[k], reference(repo, "multi", raw))
    assert result.as_numpy("hn") is None  # state outputs only when state was passed
    # chunks carrying h/c explicitly equal the whole sequence (no differencing here)
    whole = raws[0]
    h = np.zeros((2, 1, 8), np.float32)
    c = np.zeros((2, 1, 8), np.float32)
    parts = []
    for lo, hi in ((0, 2), (2, 6)):
        inputs = [data_input(whole[None, lo:hi], False), data_input(h, True, "h0")]
        inputs.append(data_input(c, False, "c0"))
        result = triton.infer("multi", inputs)
        parts.append(result.as_numpy("y")[0])
        h, c = result.as_numpy("hn"), result.as_numpy("cn")
    assert_matches(np.concatenate(parts), reference(repo, "multi", whole))


def test_classification_and_stats(server: ServerProcess) -> None:
    triton = client(server)
    x = data_input(series(1, 3, seed=3)[None], True)
    outputs = [http.InferRequestedOutput("y", binary_data=True, class_count=2)]
    result = triton.infer("multi", [x], outputs=outputs)
    top = result.as_numpy("y")
    assert top.shape == (1, 2)
    labels = {item.decode().split(":")[2] for item in top[0]}
    assert labels <= {"y0", "y1", "y2"}
    stats = triton.get_inference_statistics("multi")["model_stats"][0]
    assert stats["inference_stats"]["success"]["count"] >= 1
    assert stats["execution_count"] >= 1
    assert stats["last_inference"] > 0


def test_a_v2_sequence_is_a_v1_session(server: ServerProcess, repo: Path) -> None:
    triton = client(server)
    raw = series(7, 3, seed=4)
    first = run_sequence(triton, "multi", raw[:3], "shared-1", [])  # START+END
    step(triton, "multi", raw[:3], "shared-2", start=True)
    sessions = httpx.get(f"{server.url}/v1/sessions").json()["sessions"]
    mine = [s for s in sessions if s["model"] == "multi" and s["step"] == 3]
    assert mine, sessions
    sid = mine[0]["id"]
    # v1 steps the same session; V2 then continues it and ends it
    body = {"inputs": raw[3:5].tolist(), "step": 3}
    assert httpx.post(f"{server.url}/v1/sessions/{sid}/steps", json=body).status_code == 200
    last = step(triton, "multi", raw[5:], "shared-2", end=True)
    assert_matches(last, reference(repo, "multi", raw)[5:])
    assert_matches(first, reference(repo, "multi", raw[:3]))
    assert httpx.get(f"{server.url}/v1/sessions/{sid}").status_code in (404, 410)
