"""The gRPC floor's echo peer answers a stock tritonclient stream as seqserve does: each answer
carries its request's id, whatever order the requests interleave in."""

from __future__ import annotations

import queue
import subprocess
import sys
from pathlib import Path

import numpy as np
from bench_grpc_floor import _wait_port
from launch import free_port

from tests.service.v2.support import require

grpcclient = require("tritonclient.grpc")
ECHO = Path(__file__).resolve().parents[2] / "scripts" / "peers" / "grpc_echo_server.py"


def test_every_stream_answer_carries_its_request_id() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ECHO), "--port", str(port)])
    try:
        _wait_port(port, proc)
        answers: queue.Queue[tuple[str, bool]] = queue.Queue()
        with grpcclient.InferenceServerClient(f"127.0.0.1:{port}") as client:
            client.start_stream(
                lambda result, error: answers.put(
                    (result.get_response().id if error is None else "", error is None)
                )
            )
            x = grpcclient.InferInput("x", [1, 1, 1], "FP32")
            x.set_data_from_numpy(np.zeros((1, 1, 1), np.float32))
            sent = [f"r{k}" for k in range(20)]
            for k, request_id in enumerate(sent):
                client.async_stream_infer("co2", [x], request_id=request_id, sequence_id=k % 3 + 1)
            got = [answers.get(timeout=10) for _ in sent]
            client.stop_stream()
        assert all(ok for _, ok in got)
        assert sorted(request_id for request_id, _ in got) == sorted(sent)
    finally:
        proc.terminate()
        proc.wait(10)
