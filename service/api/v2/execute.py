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
from seqserve.service.runtime.registry import LoadedModel

Array = np.ndarray
FLOATS = ("FP32", "FP64")


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
    sid = ""
    if seq is not None:
        sid, model = await sequences.locate(engine, owner, model, pinned, seq)
    sig = model.manifest.signature
    given = {t.name: t for t in req.inputs}
    states = [p.input for p in sig.state]
    known = {sig.data_input.name, *([] if seq else states)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise V2Error(f"unexpected inference input '{unknown[0]}' for model '{name}'")
    answers = {sig.data_output.name, *([] if seq else [p.output for p in sig.state])}
    for want in req.outputs or []:  # before anything runs: a refused request changes nothing
        if want.name not in answers:
            raise V2Error(f"unexpected inference output '{want.name}' for model '{name}'")
    data = given.get(sig.data_input.name)
    if data is None:
        raise V2Error(
            f"expected 1 inputs but got {len(given)} inputs for model '{name}'; missing "
            f"required input '{sig.data_input.name}'"
        )
    raw = _values(data, name, [-1, -1, model.manifest.n_features])
    produced: dict[str, Array] = {}
    if seq is not None:
        if raw.shape[0] != 1:
            raise V2Error(
                f"inference request to model '{name}' must specify batch-size 1 due to "
                "requirements of sequence batcher"
            )
        y, step, replayed = await sequences.step(engine, owner, sid, model, seq, raw[0])
        produced[sig.data_output.name] = y[None]
        if reply is not None:
            reply["sequence_step"] = step
            if replayed:
                reply["sequence_replayed"] = True
        defaults = [sig.data_output.name]
    else:
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
        produced[sig.data_output.name] = y
        for pair, tensor in zip(sig.state, final, strict=True):
            produced[pair.output] = tensor.transpose(1, 0, 2)
        defaults = [sig.data_output.name] + ([p.output for p in sig.state] if passed else [])
    wanted = req.outputs if req.outputs is not None else [Requested(n, None) for n in defaults]
    return model, [_output(model, produced, r, req.binary_output) for r in wanted]


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
