"""A raw HTTP/2 gRPC streaming client for the bench: pre-encoded frames over a plain socket.

One connection, one ModelStreamInfer stream (stream 1). The connection preface, a SETTINGS
frame with the largest initial window, a connection WINDOW_UPDATE and the HEADERS block (HPACK
literals without indexing, encoded once) open it; each request is a pre-built DATA frame holding
one length-prefixed gRPC message. Answers are read with a minimal frame parser: DATA payloads
are reassembled into gRPC messages and only the response id (and whether `error_message` is
set) is read from the protobuf; SETTINGS and PING are acknowledged, WINDOW_UPDATEs are honoured
and sent back. Everything else (response headers, trailers) is skipped, so a message costs the
client a few microseconds and the server is what gets measured.
"""

from __future__ import annotations

import select
import socket
import struct
import time

import numpy as np

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PATH = "/inference.GRPCInferenceService/ModelStreamInfer"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
MAX_WINDOW = 2**31 - 1
STREAM = 1


def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        struct.pack("!I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack("!I", stream)
        + payload
    )


def _literal(name: str, value: str) -> bytes:
    """HPACK literal header field without indexing, new name, no Huffman (RFC 7541 6.2.2)."""

    def string(text: str) -> bytes:
        raw = text.encode()
        if len(raw) >= 127:
            raise ValueError("header too long for this one-byte-length encoder")
        return bytes([len(raw)]) + raw

    return b"\x00" + string(name) + string(value)


def opening(authority: str) -> bytes:
    """Preface, SETTINGS (no push, largest window), connection WINDOW_UPDATE, HEADERS."""
    settings = struct.pack("!HI", 0x2, 0) + struct.pack("!HI", 0x4, MAX_WINDOW)
    block = b"".join(
        _literal(k, v)
        for k, v in (
            (":method", "POST"),
            (":scheme", "http"),
            (":path", PATH),
            (":authority", authority),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        )
    )
    return (
        PREFACE
        + frame(SETTINGS, 0, 0, settings)
        + frame(WINDOW_UPDATE, 0, 0, struct.pack("!I", MAX_WINDOW - 65535))
        + frame(HEADERS, END_HEADERS, STREAM, block)
    )


def message_frame(message: bytes) -> bytes:
    """One gRPC message (uncompressed, length-prefixed) in one DATA frame on the stream."""
    return frame(DATA, 0, STREAM, b"\x00" + struct.pack("!I", len(message)) + message)


def _varint(buf: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[at]
        at += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, at
        shift += 7


def _fields(buf: bytes):  # (field number, wire type, value or bytes)
    at = 0
    while at < len(buf):
        key, at = _varint(buf, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(buf, at)
            yield number, wire, value
        elif wire == 2:
            n, at = _varint(buf, at)
            yield number, wire, buf[at : at + n]
            at += n
        elif wire == 1:
            at += 8
        elif wire == 5:
            at += 4
        else:
            raise ValueError(f"unexpected protobuf wire type {wire}")


def answer_of(message: bytes) -> tuple[str, bool]:
    """(infer_response.id, error_message set) of a serialized ModelStreamInferResponse."""
    rid, error = "", False
    for number, _, value in _fields(message):
        if number == 1 and value:  # error_message
            error = True
        elif number == 2:  # infer_response: its field 3 is the id
            for inner, _, v in _fields(value):
                if inner == 3:
                    rid = bytes(v).decode()
    return rid, error


class Connection:
    """The client side of one stream: send pre-built frames, `poll` for complete answers."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(opening(f"{host}:{port}"))
        self.sock.setblocking(False)
        self.buf = bytearray()  # raw frames not parsed yet
        self.grpc = bytearray()  # the stream's DATA bytes not yet a whole message
        self.window = 65535  # what the server lets us send (connection and stream: the least)
        self.stream_window = 65535
        self.pending = bytearray()  # frames held back for lack of send window
        self.unacked = 0  # DATA bytes received since our last WINDOW_UPDATE
        self.closed = False

    def send(self, data: bytes) -> None:
        """Queue DATA frames of the stream (all of `data` must be whole DATA frames)."""
        self.pending += data
        self._flush()

    def _flush(self) -> None:
        out = bytearray()
        while self.pending:
            n = int.from_bytes(self.pending[:3], "big")
            if n > min(self.window, self.stream_window):
                break
            self.window -= n
            self.stream_window -= n
            out += self.pending[: 9 + n]
            del self.pending[: 9 + n]
        if out:
            self._write(bytes(out))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view) :]
            except BlockingIOError:
                select.select([], [self.sock], [], 1.0)

    def poll(self, timeout: float) -> list[bytes]:
        """Whole gRPC messages received within `timeout` (empty when none came)."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return []
        chunk = self.sock.recv(1 << 18)
        if not chunk:
            self.closed = True
            return []
        self.buf += chunk
        return self._frames()

    def _frames(self) -> list[bytes]:
        buf, control, messages = self.buf, bytearray(), []
        while len(buf) >= 9:
            n = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + n:
                break
            kind, flags = buf[3], buf[4]
            stream = int.from_bytes(buf[5:9], "big") & MAX_WINDOW
            payload = bytes(buf[9 : 9 + n])
            del buf[: 9 + n]
            if kind == DATA and stream == STREAM:
                if flags & 0x8:  # PADDED: a pad length byte, then padding at the end
                    payload = payload[1 : len(payload) - payload[0]]
                self.grpc += payload
                self.unacked += n
            elif kind == SETTINGS and not flags & ACK:
                for k in range(0, len(payload), 6):
                    key, value = struct.unpack_from("!HI", payload, k)
                    if key == 0x4:  # the server's initial stream window
                        self.stream_window += value - 65535
                control += frame(SETTINGS, ACK, 0, b"")
            elif kind == PING and not flags & ACK:
                control += frame(PING, ACK, 0, payload)
            elif kind == WINDOW_UPDATE:
                grant = int.from_bytes(payload, "big") & MAX_WINDOW
                if stream == 0:
                    self.window += grant
                else:
                    self.stream_window += grant
            elif kind in (RST_STREAM, GOAWAY) or (
                kind == HEADERS and stream == STREAM and flags & END_STREAM
            ):
                self.closed = True  # the RPC ended (trailers) or the connection is going
        if self.unacked > 1 << 20:  # keep both receive windows wide open
            grant = struct.pack("!I", self.unacked)
            control += frame(WINDOW_UPDATE, 0, 0, grant) + frame(WINDOW_UPDATE, 0, STREAM, grant)
            self.unacked = 0
        if control:
            self._write(bytes(control))
        if self.pending:
            self._flush()
        g = self.grpc
        while len(g) >= 5:
            n = int.from_bytes(g[1:5], "big")
            if len(g) < 5 + n:
                break
            messages.append(bytes(g[5 : 5 + n]))
            del g[: 5 + n]
        return messages

    def finish(self, timeout: float = 5.0) -> None:
        """Half-close the stream, wait (bounded) for the trailers, close the socket."""
        self._write(frame(DATA, END_STREAM, STREAM, b""))
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self.poll(0.2)
        self.sock.close()


def drive(
    host: str, port: int, starts: list[bytes], steps: list[bytes], seconds: float, barrier
) -> tuple[np.ndarray, int, float]:
    """START every sequence (untimed), then each sends its step again as soon as it is
    answered until `seconds` pass: (latencies, errors, client CPU seconds). The request of
    sequence k carries id str(k); `starts`/`steps` are serialized ModelInferRequests."""
    conn = Connection(host, port)
    step_frames = [message_frame(m) for m in steps]
    errors = 0
    conn.send(b"".join(message_frame(m) for m in starts))
    waiting = len(starts)
    while waiting and not conn.closed:
        for message in conn.poll(10.0):
            errors += answer_of(message)[1]
            waiting -= 1
    barrier.wait(timeout=120)
    cpu0 = time.process_time()
    deadline = time.perf_counter() + seconds
    sent_at = [time.perf_counter()] * len(steps)
    conn.send(b"".join(step_frames))
    lat: list[float] = []
    live = len(steps)
    while live and not conn.closed:
        out = []
        for message in conn.poll(10.0):
            now = time.perf_counter()
            rid, error = answer_of(message)
            k = int(rid)
            errors += error
            if now <= deadline:
                lat.append(now - sent_at[k])
                sent_at[k] = now
                out.append(step_frames[k])
            else:
                live -= 1
        if out:  # every answer of one read is resent in one write, as the WebSocket load does
            conn.send(b"".join(out))
    errors += live  # sequences whose answers never came (the stream ended early)
    conn.finish()
    return np.asarray(lat), errors, time.process_time() - cpu0
