"""WebSocket load: several client processes, each driving many streams over raw sockets.

Each stream sends one step (`{"inputs": [[x]]}`), waits for its reply, and repeats. The
upgrade handshake and one checked round trip use the `websockets` library; the load itself
writes a pre-built masked frame and reads replies with a minimal frame parser, so the client
costs a few microseconds a message and the server, not the client, is what is measured.
"""

from __future__ import annotations

import base64
import multiprocessing as mp
import os
import queue
import selectors
import socket
import struct
import time
from dataclasses import dataclass

import numpy as np
import orjson

STEP = orjson.dumps({"inputs": [[415.2]]})
_MASK = b"\x5a\x13\xc4\x7e"


def check(url: str, session_id: str) -> str | None:
    """None when the stream endpoint answers a step as documented, else why not."""
    from websockets.exceptions import WebSocketException
    from websockets.sync.client import connect

    ws_url = url.replace("http://", "ws://") + f"/v1/sessions/{session_id}/stream"
    try:
        with connect(ws_url, open_timeout=5, close_timeout=2) as ws:
            ws.send(STEP.decode())
            reply = orjson.loads(ws.recv(timeout=10))
    except (OSError, TimeoutError, WebSocketException, orjson.JSONDecodeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    if not isinstance(reply, dict) or "outputs" not in reply:
        return f"unexpected reply {str(reply)[:200]}"
    return None


def _frame(payload: bytes, opcode: int = 0x1) -> bytes:
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = (_MASK * (n // 4 + 1))[:n]
    return head + _MASK + bytes(a ^ b for a, b in zip(payload, mask, strict=True))


def _connect(host: str, port: int, path: str) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the WebSocket handshake")
        data += chunk
    if not data.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"handshake refused: {data.splitlines()[0]!r}")
    sock.setblocking(False)
    return sock


def _parse(buf: bytearray) -> list[tuple[int, bytes]]:
    """Pop complete (opcode, payload) frames from buf (server frames are unmasked)."""
    frames = []
    while len(buf) >= 2:
        n, at = buf[1] & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                break
            n, at = struct.unpack_from("!H", buf, 2)[0], 4
        elif n == 127:
            if len(buf) < 10:
                break
            n, at = struct.unpack_from("!Q", buf, 2)[0], 10
        if len(buf) < at + n:
            break
        frames.append((buf[0] & 0x0F, bytes(buf[at : at + n])))
        del buf[: at + n]
    return frames


def _worker(host: str, port: int, paths: list[str], seconds: float, barrier, out) -> None:
    socks = [_connect(host, port, p) for p in paths]
    frame = _frame(STEP)
    sel = selectors.DefaultSelector()
    bufs = {}
    sent_at = {}
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
        bufs[s.fileno()] = bytearray()
    barrier.wait(timeout=120)
    cpu0 = time.process_time()
    started = time.perf_counter()
    deadline = started + seconds
    lat: list[float] = []
    errors = 0
    for s in socks:
        sent_at[s.fileno()] = time.perf_counter()
        s.send(frame)
    live = len(socks)
    while live:
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj
            fd = s.fileno()
            chunk = s.recv(65536)
            if not chunk:
                errors += 1
                sel.unregister(s)
                live -= 1
                continue
            buf = bufs[fd]
            buf += chunk
            for opcode, payload in _parse(buf):
                now = time.perf_counter()
                if opcode == 0x9:  # ping
                    s.send(_frame(payload, 0xA))
                    continue
                if opcode == 0x8:  # close
                    errors += 1
                    sel.unregister(s)
                    live -= 1
                    break
                if now <= deadline:
                    lat.append(now - sent_at[fd])
                    if b'"outputs"' not in payload:
                        errors += 1
                if now < deadline:
                    sent_at[fd] = now
                    s.send(frame)
                else:
                    sel.unregister(s)
                    live -= 1
        if time.perf_counter() > deadline + 10:
            break
    cpu = time.process_time() - cpu0
    for s in socks:
        s.close()
    out.put((np.asarray(lat), errors, cpu))


@dataclass(frozen=True)
class WsResult:
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


def run(url: str, ids: list[str], streams: int, seconds: float, processes: int) -> WsResult:
    host, port = url.removeprefix("http://").split(":")
    paths = [f"/v1/sessions/{i}/stream" for i in ids[:streams]]
    procs_n = max(1, min(processes, streams))
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(procs_n), ctx.Queue()
    workers = [
        ctx.Process(
            target=_worker, args=(host, int(port), paths[k::procs_n], seconds, barrier, out)
        )
        for k in range(procs_n)
    ]
    for w in workers:
        w.start()
    try:
        results = [out.get(timeout=seconds + 180) for _ in workers]
    except queue.Empty:
        raise RuntimeError("a WebSocket client process failed (see its traceback above)") from None
    finally:
        for w in workers:
            w.join(timeout=10)
            if w.is_alive():
                w.terminate()
    lat = np.concatenate([r[0] for r in results])
    return WsResult(
        streams=streams,
        processes=procs_n,
        messages=len(lat),
        seconds=seconds,
        p50_ms=float(np.percentile(lat, 50) * 1e3) if len(lat) else float("nan"),
        p99_ms=float(np.percentile(lat, 99) * 1e3) if len(lat) else float("nan"),
        errors=sum(r[1] for r in results),
        client_cpu_s=sum(r[2] for r in results),
    )
