"""Triton's sequence extension mapped onto engine sessions.

A sequence is a session whose id derives from (caller, model name, sequence id): any replica
sharing the state store finds it without a side table, and callers with different API keys
never meet. START creates the session (replacing a live one of that id: a restart), other
requests step it, END deletes it after answering; START+END is a length-1 sequence. The
session has the engine's default TTLs, so its idle TTL is Triton's max sequence idle time.
The seqserve extension `sequence_step` (the index a request expects to start at) goes to the
engine as v1's `step` does: a resent last request is replayed, a mismatch is a 409.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from seqserve.service.api.v2.errors import V2Error
from seqserve.service.engine import Engine
from seqserve.service.errors import Gone, NotFound, StepConflict, VersionUnloaded
from seqserve.service.runtime.layout import MAX_STEP
from seqserve.service.runtime.registry import LoadedModel

Array = np.ndarray
MAX_STRING_ID = 256


@dataclass(frozen=True)
class Sequence:
    id: int | str  # Triton tells uint64 7 and string "7" apart, so does the derived id
    start: bool
    end: bool
    step: int | None = None  # the `sequence_step` extension: expected start index


def parse(params: dict[str, Any], model: str) -> Sequence | None:
    """The request's place in a sequence from its parameters; None for a stateless request."""
    seq_id = params.get("sequence_id", 0)
    is_uint = type(seq_id) is int and 0 <= seq_id < 2**64
    if not (is_uint or isinstance(seq_id, str)):
        raise V2Error("Unable to parse 'sequence_id'")
    if isinstance(seq_id, str) and len(seq_id) > MAX_STRING_ID:
        raise V2Error(f"a string 'sequence_id' may hold at most {MAX_STRING_ID} characters")
    start, end = (_flag(params, key) for key in ("sequence_start", "sequence_end"))
    if seq_id in (0, ""):
        if "sequence_step" in params:
            raise V2Error("'sequence_step' is the step of a sequence: give a 'sequence_id'")
        if start or end:
            raise V2Error(
                f"inference request to model '{model}' must specify a non-zero or non-empty "
                "correlation ID"
            )
        return None
    return Sequence(seq_id, start, end, _step(params, start))


def _step(params: dict[str, Any], start: bool) -> int | None:
    value = params.get("sequence_step")
    if value is None:
        return None
    if type(value) is not int or not 0 <= value <= MAX_STEP:
        raise V2Error(f"'sequence_step' must be an integer in [0, {MAX_STEP}]")
    if start and value != 0:
        raise V2Error("a request with 'sequence_start' starts at 'sequence_step' 0")
    return value


def _flag(params: dict[str, Any], key: str) -> bool:
    value = params.get(key, False)
    if not isinstance(value, bool):
        raise V2Error(f"Unable to parse '{key}'")
    return value


@functools.lru_cache(maxsize=65536, typed=True)  # a pure function of its arguments, on every step
def session_id(owner: str | None, model: str, seq_id: int | str) -> str:
    digest = hashlib.blake2b(digest_size=16, person=b"seqserve-v2-seq")
    tagged = f"u{seq_id}" if isinstance(seq_id, int) else f"s{seq_id}"
    for part in (owner or "", model, tagged):
        encoded = part.encode()
        digest.update(len(encoded).to_bytes(4, "big") + encoded)
    return f"v2-{digest.hexdigest()}"


def _no_start(seq: Sequence, model: str) -> V2Error:
    return V2Error(
        f"inference request for sequence {seq.id} to model '{model}' must specify the START "
        "flag on the first request of the sequence"
    )


async def step(
    engine: Engine, owner: str | None, sid: str, model: LoadedModel, seq: Sequence, raw: Array
) -> tuple[Array, int, bool]:
    """Feed raw [T, F] (checked against `model`) to the sequence: its outputs [T, O] in dataset
    units, its step after the request, and whether the answer is the stored one of a resent
    request. A running sequence on another version raises VersionMoved, nothing changed."""
    m = model.manifest
    if seq.start:
        await engine.restart_session(sid, owner, m.name, m.version)
    try:  # a START's session is on `model` by construction: no version to check
        result = await engine.step(sid, owner, raw, seq.step, None if seq.start else m.version)
    except VersionUnloaded:
        raise
    except (NotFound, Gone):  # never started, ended or expired
        raise _no_start(seq, m.name) from None
    except StepConflict as e:
        current = e.extra["current_step"]
        detail = f"sequence {seq.id}: {e.detail}; current step {current}"
        raise V2Error(detail, status=409, parameters={"sequence_step": current}) from None
    if seq.end:
        with contextlib.suppress(NotFound, Gone):
            await engine.delete(sid, owner)
    return result.outputs, result.step, result.replayed
