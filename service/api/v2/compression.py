"""HTTP compression for V2 infer: `Content-Encoding` in, `Accept-Encoding` out.

tritonclient's `request_compression_algorithm` sends gzip (RFC 1952) or deflate (a zlib stream,
RFC 1950, as HTTP's "deflate" means); raw deflate is accepted too. The inflated body is capped
(a small gzip bomb must not become gigabytes): beyond the cap the answer is 413. A gzip body
may hold a few members (RFC 1952 allows concatenation), not thousands: each member restarts
the decoder. Decoding runs in linear time, in bounded chunks, and off the event loop for all
but small bodies.
"""

from __future__ import annotations

import asyncio
import gzip
import zlib

from seqserve.service.api.v2.errors import V2Error

SUPPORTED = ("gzip", "deflate")
MAX_GZIP_MEMBERS = 8
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_CHUNK = 1 << 16  # input fed to the decoder at a time: leftovers never exceed it
_INLINE_BYTES = 1 << 14  # smaller bodies decode on the loop: a thread hop costs more


async def inflate_body(body: bytes, encoding: str | None, limit: int) -> bytes:
    """`inflate`, in a worker thread unless the body is small (zlib releases the GIL)."""
    if len(body) <= _INLINE_BYTES or (encoding or "").strip().lower() in ("", "identity"):
        return inflate(body, encoding, limit)
    return await asyncio.to_thread(inflate, body, encoding, limit)


def inflate(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The request body decoded per its Content-Encoding, at most `limit` bytes."""
    kind = (encoding or "").strip().lower()
    if kind in ("", "identity"):
        return body
    if kind not in SUPPORTED:
        raise V2Error("Unsupported compression type", headers={"Accept-Encoding": "gzip, deflate"})
    attempts = [_GZIP_WBITS] if kind == "gzip" else [zlib.MAX_WBITS, -zlib.MAX_WBITS]
    for wbits in attempts:
        try:
            return _inflate(body, wbits, limit)
        except zlib.error:
            continue
    raise V2Error(f"failed to decompress the {kind} request body")


def _inflate(body: bytes, wbits: int, limit: int) -> bytes:
    if not body:
        return b""
    out = bytearray()
    view = memoryview(body)
    stream = zlib.decompressobj(wbits)
    members, pos = 1, 0
    pending: bytes | memoryview = b""
    while True:
        if not pending:
            if pos >= len(body):
                break
            pending, pos = view[pos : pos + _CHUNK], pos + _CHUNK
        # room is >= 1 here: 0 would mean "unbounded" to zlib
        out += stream.decompress(pending, limit + 1 - len(out))
        if len(out) > limit:
            raise V2Error(f"the decompressed request body exceeds {limit} bytes", status=413)
        if not stream.eof:
            pending = stream.unconsumed_tail
            continue
        pending = stream.unused_data  # the start of a next member: at most one chunk
        if not pending and pos >= len(body):
            break
        if wbits != _GZIP_WBITS:  # only gzip may hold several members
            raise zlib.error("trailing data")
        members += 1
        if members > MAX_GZIP_MEMBERS:
            raise V2Error(
                f"the gzip request body holds more than {MAX_GZIP_MEMBERS} members; "
                "compress it as one member"
            )
        stream = zlib.decompressobj(wbits)
    if not stream.eof:
        raise zlib.error("truncated stream")
    return bytes(out)


def negotiate(accept: str | None) -> str | None:
    """The coding to answer with: gzip or deflate by the client's q-values, else None."""
    best, best_q = None, 0.0
    for item in (accept or "").split(","):
        name, *params = (part.strip() for part in item.split(";"))
        if name.lower() not in SUPPORTED:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > best_q:
            best, best_q = name.lower(), q
    return best


def deflate(body: bytes, coding: str) -> bytes:
    if coding == "gzip":
        return gzip.compress(body, compresslevel=6, mtime=0)
    return zlib.compress(body, 6)
