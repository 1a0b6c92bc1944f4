"""What a V2 infer request means for the engine: a sequence step or a stateless batch.

Inside a sequence (a `sequence_id`) the client sends only the data input `[1, T, F]`; the
state is implicit. Without one the request is stateless: `[B, T, F]` from zero state, or from
state tensors the caller passes explicitly under the manifest's state input names (`h0`,
`c0`: `[L, B, H]` as in the ONNX graph), in which case the final state comes back under the
state output names (`hn`, `cn`). Values are in the manifest's raw units (FP32 or FP64 in);
outputs are FP32.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from seqserve.service.api.v2 import sequences
from seqserve.service.api.v2.codec import InferRequest, Output, Requested, classify
from seqserve.service.api.v2.errors import V2Error
from seqserve.service.api.v2.tensors import Tensor
from seqserve.service.engine import Engine
from seqserve.service.errors import VersionMoved
from seqserve.service.runtime.registry import LoadedModel

Array = np.ndarray
FLOATS = ("FP32", "FP64")
MOVES = 3  # checks against a newly found version before giving up (restarts racing this one)


def _values(tensor: Tensor, model: str, shape: list[int]) -> Array:
    if tensor.datatype not in FLOATS:
        raise V2Error(
            f"inference input '{tensor.name}' data-type is '{tensor.datatype}', but model "
            f"'{model}' expects 'FP32'"
        )
    fits = len(tensor.shape) == len(shape) and all(
        want in (-1, got) for want, got in zip(shape, tensor.shape, strict=True)
    )
    if not fits:
        raise V2Error(
            f"unexpected shape for input '{tensor.name}' for model '{model}'. "
            f"Expected {shape}, got {list(tensor.shape)}"
        )
    return tensor.array.astype(np.float64)


async def execute(
    engine: Engine,
    owner: str | None,
    model: LoadedModel,
    pinned: str | None,
    req: InferRequest,
    caller: str = "",
    reply: dict[str, Any] | None = None,
) -> tuple[LoadedModel, list[Output]]:
    """Run the request; the model version it ran on and its outputs, as asked for.
    `caller` is whom the per-client cap on stateless (heavy) runs counts; `reply`, if given,
    receives the response parameters (a sequence's `sequence_step` after the request)."""
    name = model.manifest.name
    seq = sequences.parse(req.parameters, name)
    if seq is None:
        return model, await _stateless(engine, model, req, caller)
    sid = sequences.session_id(owner, name, seq.id)
    for _ in range(MOVES):
        # checked against the version asked for; a running sequence on another version (one
        # started before a newer version loaded) is checked again against its own
        try:
            return model, await _sequence(engine, owner, model, sid, seq, req, reply)
        except VersionMoved as moved:
            running = moved.model.manifest.version
            if pinned is not None:
                raise V2Error(
                    f"sequence {seq.id} of model '{name}' runs on version {running}, not {pinned}"
                ) from None
            model = moved.model
    raise V2Error(f"sequence {seq.id} of model '{name}' keeps changing version: send it again")


def _data(model: LoadedModel, req: InferRequest, stateful: bool) -> Array:
    """The data input as float64 [B, T, F], once the request's inputs and outputs are known
    to the model (before anything runs: a refused request changes nothing)."""
    name, sig = model.manifest.name, model.manifest.signature
    states = [] if stateful else [p.input for p in sig.state]
    given = {t.name: t for t in req.inputs}
    known = {sig.data_input.name, *states}
    unknown = sorted(set(given) - known)
    if unknown:
        raise V2Error(f"unexpected inference input '{unknown[0]}' for model '{name}'")
    answers = {sig.data_output.name, *([] if stateful else [p.output for p in sig.state])}
    for want in req.outputs or []:
        if want.name not in answers:
            raise V2Error(f"unexpected inference output '{want.name}' for model '{name}'")
    data = given.get(sig.data_input.name)
    if data is None:
        raise V2Error(
            f"expected 1 inputs but got {len(given)} inputs for model '{name}'; missing "
            f"required input '{sig.data_input.name}'"
        )
    return _values(data, name, [-1, -1, model.manifest.n_features])


async def _sequence(
    engine: Engine,
    owner: str | None,
    model: LoadedModel,
    sid: str,
    seq: sequences.Sequence,
    req: InferRequest,
    reply: dict[str, Any] | None,
) -> list[Output]:
    raw = _data(model, req, stateful=True)
    name, out = model.manifest.name, model.manifest.signature.data_output.name
    if raw.shape[0] != 1:
        raise V2Error(
            f"inference request to model '{name}' must specify batch-size 1 due to "
            "requirements of sequence batcher"
        )
    y, step, replayed = await sequences.step(engine, owner, sid, model, seq, raw[0])
    if reply is not None:
        reply["sequence_step"] = step
        if replayed:
            reply["sequence_replayed"] = True
    return _outputs(model, req, {out: y[None]}, [out])


async def _stateless(
    engine: Engine, model: LoadedModel, req: InferRequest, caller: str
) -> list[Output]:
    raw = _data(model, req, stateful=False)
    name, sig = model.manifest.name, model.manifest.signature
    given = {t.name: t for t in req.inputs}
    states = [p.input for p in sig.state]
    passed = [n for n in states if n in given]
    if passed and len(passed) != len(states):
        raise V2Error(f"model '{name}' takes all of the state inputs {states} or none")
    state = None
    if passed:
        shapes = [[p.layers, raw.shape[0], p.size] for p in sig.state]
        with np.errstate(over="ignore"):  # out of FP32 range: inf, refused by the engine
            state = [
                _values(given[n], name, s).astype(np.float32).transpose(1, 0, 2)
                for n, s in zip(states, shapes, strict=True)
            ]
    y, final = await engine.run_batch(name, model.manifest.version, raw, state, caller)
    produced = {sig.data_output.name: y}
    for pair, tensor in zip(sig.state, final, strict=True):
        produced[pair.output] = tensor.transpose(1, 0, 2)
    defaults = [sig.data_output.name] + ([p.output for p in sig.state] if passed else [])
    return _outputs(model, req, produced, defaults)


def _outputs(
    model: LoadedModel, req: InferRequest, produced: dict[str, Array], defaults: list[str]
) -> list[Output]:
    wanted = req.outputs if req.outputs is not None else [Requested(n, None) for n in defaults]
    return [_output(model, produced, r, req.binary_output) for r in wanted]


def _output(
    model: LoadedModel, produced: dict[str, Array], want: Requested, binary: bool
) -> Output:
    values = produced[want.name]
    binary = binary if want.binary is None else want.binary
    if want.classes:
        m = model.manifest
        labels = [o.name for o in m.outputs]
        named = want.name == m.signature.data_output.name and values[0].size == len(labels)
        classes = classify(values, want.classes, labels if named else None)
        return Output(want.name, "BYTES", classes, binary)
    return Output(want.name, "FP32", values.astype(np.float32), binary)
