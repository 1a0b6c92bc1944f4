"""gRPC streaming load: client processes, each with one ModelStreamInfer stream carrying many
sequences (Triton's streaming, as tritonclient's `async_stream_infer` uses it).

Each sequence sends one step, waits for its answer, and repeats, all on the process's one
stream. `check` first makes one round trip with the stock `tritonclient.grpc` client (a
sequence START+END, its output checked). The default load client (`raw`, `grpcraw.py`) writes
pre-encoded HTTP/2 DATA frames on a plain socket and reads answers with a minimal frame parser,
as the WebSocket load does, so it costs a few microseconds a message and the server is what is
measured; `aio` (a grpc.aio stub with pre-built messages, several hundred microseconds of
client CPU a message) stays for comparison.
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


def check(address: str, model: str) -> str | None:
    """None when a sequence START+END round trip through tritonclient.grpc answers one
    finite output, else why not."""
    import tritonclient.grpc as tg
    from tritonclient.utils import InferenceServerException

    seq_id = int.from_bytes(os.urandom(6), "big") + 1
    try:
        with tg.InferenceServerClient(address) as client:
            x = tg.InferInput("x", [1, 1, 1], "FP32")
            x.set_data_from_numpy(VALUE)
            result = client.infer(
                model, [x], sequence_id=seq_id, sequence_start=True, sequence_end=True
            )
            y = result.as_numpy("y")
    except InferenceServerException as exc:
        return f"tritonclient.grpc: {exc}"
    if y is None or y.shape[:2] != (1, 1) or not np.isfinite(y).all():
        return f"unexpected answer {None if y is None else y.tolist()}"
    return None


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


def _drive_raw(address: str, model: str, first_id: int, n: int, seconds: float, barrier):
    from tritonclient.grpc import service_pb2 as pb

    from benchlib import grpcraw

    pairs = [_requests(pb, model, first_id + k, k) for k in range(n)]
    host, port = address.rsplit(":", 1)
    starts = [a.SerializeToString() for a, _ in pairs]
    steps = [b.SerializeToString() for _, b in pairs]
    return grpcraw.drive(host, int(port), starts, steps, seconds, barrier)


def _worker(address: str, model: str, first_id: int, n: int, seconds: float, barrier, out, client):
    if client == "raw":
        out.put(_drive_raw(address, model, first_id, n, seconds, barrier))
    else:
        out.put(asyncio.run(_drive(address, model, first_id, n, seconds, barrier)))


@dataclass(frozen=True)
class GrpcResult:
    streams: int
    processes: int
    client: str
    messages: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    client_cpu_s: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


CLIENTS = ("raw", "aio")


def run(
    address: str, model: str, streams: int, seconds: float, processes: int, client: str = "raw"
) -> GrpcResult:
    """`streams` sequences over `processes` gRPC streams (one per client process); `client`:
    raw HTTP/2 frames or grpc.aio."""
    if client not in CLIENTS:
        raise ValueError(f"client must be one of {CLIENTS}, not {client!r}")
    procs_n = max(1, min(processes, streams))
    share = [len(range(k, streams, procs_n)) for k in range(procs_n)]
    base = int.from_bytes(os.urandom(5), "big") << 16  # fresh sequence ids on every run
    ctx = mp.get_context("spawn")  # never fork a process that may hold gRPC state
    barrier, out = ctx.Barrier(procs_n), ctx.Queue()
    workers = [
        ctx.Process(
            target=_worker,
            args=(address, model, base + sum(share[:k]), share[k], seconds, barrier, out, client),
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
        client=client,
        messages=len(lat),
        seconds=seconds,
        p50_ms=float(np.percentile(lat, 50) * 1e3) if len(lat) else float("nan"),
        p99_ms=float(np.percentile(lat, 99) * 1e3) if len(lat) else float("nan"),
        errors=sum(r[1] for r in results),
        client_cpu_s=sum(r[2] for r in results),
    )
