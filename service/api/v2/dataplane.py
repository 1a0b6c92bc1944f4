"""The protocol-neutral V2 inference: a parsed request in, the model version and outputs out.

The HTTP adapter (`infer.py`: JSON and binary tensor data) and the gRPC adapter (`api/grpc/`:
protobuf) each parse their wire format into a `codec.InferRequest`, call `infer` once and
encode the `codec.Output`s their own way. Model lookup, the sequence mapping (through
`execute`) and the statistics extension's bookkeeping live here, once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from seqserve.service.api.context import AppContext
from seqserve.service.api.v2.codec import InferRequest, Output
from seqserve.service.api.v2.execute import execute
from seqserve.service.api.v2.views import resolve
from seqserve.service.errors import SeqServeError
from seqserve.service.runtime.registry import LoadedModel


@dataclass(frozen=True)
class Answer:
    model: LoadedModel  # the version that ran (a running sequence keeps its own)
    request: InferRequest
    outputs: list[Output]
    parameters: dict[str, Any] = field(default_factory=dict)  # e.g. a sequence's step after it


async def infer(
    ctx: AppContext,
    owner: str | None,
    caller: str,
    name: str,
    version: str | None,
    read: Callable[[], Awaitable[InferRequest]],
) -> Answer:
    """Resolve the model, `read` the request, run it; V2 statistics count the outcome.

    `read` runs after the lookup so that a malformed request counts as a failure of the model
    it was sent to (Triton does the same). `caller` is whom the per-client heavy cap counts."""
    started = time.perf_counter_ns()
    model = resolve(ctx.engine, name, version)
    try:
        req = await read()
        parameters: dict[str, Any] = {}
        model, outputs = await execute(ctx.engine, owner, model, version, req, caller, parameters)
    except SeqServeError:
        ctx.v2_stats.record(model, False, 0, time.perf_counter_ns() - started)
        raise
    data_input = model.manifest.signature.data_input.name
    batch = next((t.shape[0] for t in req.inputs if t.name == data_input), 0)
    ctx.v2_stats.record(model, True, batch, time.perf_counter_ns() - started)
    return Answer(model, req, outputs, parameters)
