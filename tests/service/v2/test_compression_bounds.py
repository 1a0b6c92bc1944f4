"""Gzip member bounds: a few members decode, thousands are refused with a 400 that says why."""

from __future__ import annotations

import asyncio
import gzip
import random

import pytest
from seqserve.service.api.v2 import compression
from seqserve.service.api.v2.errors import V2Error


def test_up_to_the_member_bound_decodes_in_order() -> None:
    parts = [bytes([k]) * (70_000 + k) for k in range(compression.MAX_GZIP_MEMBERS)]
    body = b"".join(gzip.compress(p) for p in parts)  # members straddle the input chunks
    assert compression.inflate(body, "gzip", 1 << 20) == b"".join(parts)


@pytest.mark.parametrize("members", [compression.MAX_GZIP_MEMBERS + 1, 200_000])
def test_more_members_are_refused(members: int) -> None:
    with pytest.raises(V2Error, match="members") as refused:
        compression.inflate(gzip.compress(b"") * members, "gzip", 4 << 20)
    assert refused.value.status == 400


def test_large_bodies_decode_off_the_loop_with_the_same_result() -> None:
    payload = random.Random(0).randbytes(40_000)
    body = gzip.compress(payload)
    assert len(body) > 1 << 14  # over the inline threshold: decoded in a thread
    assert asyncio.run(compression.inflate_body(body, "gzip", 1 << 20)) == payload
    bomb = gzip.compress(b"\0" * (8 << 20))
    with pytest.raises(V2Error) as refused:
        asyncio.run(compression.inflate_body(bomb * 3, "gzip", 1 << 20))
    assert refused.value.status == 413
