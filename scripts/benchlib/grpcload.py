"""gRPC streaming load: client processes, each with one ModelStreamInfer stream carrying many
sequences (Triton's streaming, as tritonclient's `async_stream_infer` uses it).

Each sequence sends one step, waits for its answer, and repeats, all on the process's one
stream. The client is grpc.aio with pre-serialized requests, so that per message it costs
little next to the server; it is still Python, heavier than the WebSocket load's raw sockets.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import queue
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

VALUE = np.array([[[415.2]]], dtype=np.float32)


def _requests(pb: Any, model: str, seq_id: int, k: int) -> tuple[Any, Any]:
    """(START request, step request) for sequence `seq_id`, answered with id str(k)."""
    made = []
    for start in (True, False):
        request = pb.ModelInferRequest(model_name=model, id=str(k))
        request.inputs.add(name="x", datatype="FP32", shape=[1, 1, 1])
        request.raw_input_contents.append(VALUE.tobytes())
        request.parameters["sequence_id"].int64_param = seq_id
        request.parameters["sequence_start"].bool_param = start
        made.append(request)
    return made[0], made[1]


async def _drive(address: str, model: str, first_id: int, n: int, seconds: float, barrier: Any):
    import grpc
    from tritonclient.grpc import service_pb2 as pb
    from tritonclient.grpc import service_pb2_grpc as pb_grpc

    async with grpc.aio.insecure_channel(address) as channel:
        call = pb_grpc.GRPCInferenceServiceStub(channel).ModelStreamInfer()
        pairs = [_requests(pb, model, first_id + k, k) for k in range(n)]
        errors = 0
        for start, _ in pairs:  # START every sequence first: not timed
            await call.write(start)
        for _ in pairs:
            errors += bool((await call.read()).error_message)
        await asyncio.to_thread(barrier.wait, 120)
        cpu0 = time.process_time()
        deadline = time.perf_counter() + seconds
        sent_at = [time.perf_counter()] * n
        for k, (_, step) in enumerate(pairs):
            sent_at[k] = time.perf_counter()
            await call.write(step)
        lat: list[float] = []
        live = n
        while live:
            answer = await call.read()
            now = time.perf_counter()
            k = int(answer.infer_response.id)
            if answer.error_message:
                errors += 1
            if now <= deadline:
                lat.append(now - sent_at[k])
                sent_at[k] = now
                await call.write(pairs[k][1])
            else:
                live -= 1
        await call.done_writing()
        cpu = time.process_time() - cpu0
    return np.asarray(lat), errors, cpu


def _worker(address: str, model: str, first_id: int, n: int, seconds: float, barrier, out):
    out.put(asyncio.run(_drive(address, model, first_id, n, seconds, barrier)))


@dataclass(frozen=True)
class GrpcResult:
    streams: int
    processes: int
    messages: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    client_cpu_s: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def run(address: str, model: str, streams: int, seconds: float, processes: int) -> GrpcResult:
    """`streams` sequences over `processes` gRPC streams (one per client process)."""
    procs_n = max(1, min(processes, streams))
    share = [len(range(k, streams, procs_n)) for k in range(procs_n)]
    base = int.from_bytes(os.urandom(5), "big") << 16  # fresh sequence ids on every run
    ctx = mp.get_context("spawn")  # never fork a process that may hold gRPC state
    barrier, out = ctx.Barrier(procs_n), ctx.Queue()
    workers = [
        ctx.Process(
            target=_worker,
            args=(address, model, base + sum(share[:k]), share[k], seconds, barrier, out),
        )
        for k in range(procs_n)
    ]
    for w in workers:
        w.start()
    try:
        results = [out.get(timeout=seconds + 180) for _ in workers]
    except queue.Empty:
        raise RuntimeError("a gRPC client process failed (see its traceback above)") from None
    finally:
        for w in workers:
            w.join(timeout=10)
            if w.is_alive():
                w.terminate()
    lat = np.concatenate([r[0] for r in results])
    return GrpcResult(
        streams=streams,
        processes=procs_n,
        messages=len(lat),
        seconds=seconds,
        p50_ms=float(np.percentile(lat, 50) * 1e3) if len(lat) else float("nan"),
        p99_ms=float(np.percentile(lat, 99) * 1e3) if len(lat) else float("nan"),
        errors=sum(r[1] for r in results),
        client_cpu_s=sum(r[2] for r in results),
    )
