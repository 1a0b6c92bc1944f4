"""The server's own CPU per v1 step, in process: no sockets, no load generator, two builds.

wrk and the server share the machine's cores, so steps/s moves with whatever else runs. This
drives the real stack instead (uvicorn's httptools protocol as `python -m seqserve.service`
configures it, the middlewares, the fast lane, the engine, the batcher and its ONNX Runtime
thread) through in-memory transports: each of N connections sends its next step as soon as
its answer is written, and the CPU time of the process (all threads) and of the event-loop
thread is divided by the steps. What is left out is the kernel's share (socket reads/writes).

    python scripts/bench_path.py --a /work/old/.venv/bin/python --b .venv/bin/python --floor

--record keeps the figures in docs/bench_path.json and its section of docs/benchmarks.md.

Each build runs in its own process (`--child` is that process); rounds alternate A/B and B/A.
Other load on the machine only adds CPU time (cache and core contention), so the best round
of each build is the steadier figure when the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchlib import markdown
from benchlib import path as path_section

STEP_BODY = b'{"inputs": [[415.2]]}'


def _request(method: str, path: str, body: bytes) -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Connection:
    """An in-memory transport: the protocol writes answers here; each complete answer is
    handed to `on_answer`, which may send the next request (on a later loop pass, as a
    network read would arrive)."""

    def __init__(self, protocol_class: Any, config: Any, state: Any) -> None:
        self.protocol = protocol_class(config=config, server_state=state, app_state={})
        self.buffer = b""
        self.answers: list[bytes] = []
        self.waiter: asyncio.Future[bytes] | None = None
        self.next_request = b""
        self.running = False  # while set, each answer sends the next request
        self.sending = False  # a next request is scheduled
        self.done = 0
        self.closed = False
        self.protocol.connection_made(self)

    # the transport interface the protocol uses
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def write(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = self.buffer[:head_end].lower()
        start = head.find(b"content-length: ") + 16
        length = int(head[start : head.find(b"\r\n", start)])
        if len(self.buffer) < head_end + 4 + length:
            return
        answer, self.buffer = (
            self.buffer[: head_end + 4 + length],
            self.buffer[head_end + 4 + length :],
        )
        self.done += 1
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(answer)
        elif self.running:
            self.sending = True
            asyncio.get_running_loop().call_soon(self._send_next)

    def _send_next(self) -> None:
        self.sending = False
        if self.running:
            self.protocol.data_received(self.next_request)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return False

    async def call(self, request: bytes) -> bytes:
        self.waiter = asyncio.get_running_loop().create_future()
        self.protocol.data_received(request)
        answer = await self.waiter
        self.waiter = None
        return answer


def _seqserve() -> tuple[Any, Any, dict[str, Any]]:
    """The app, protocol class and uvicorn options as `python -m seqserve.service` runs them."""
    from seqserve.service.app import create_app
    from seqserve.service.settings import Settings
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    settings = Settings()
    limits = settings.limits
    try:  # builds with bounded request heads
        from seqserve.service.connections import guarded_protocol
    except ImportError:
        return create_app(settings), HttpToolsProtocol, {}
    protocol = guarded_protocol(limits.head_timeout_s, limits.max_head_bytes)
    options = {
        "limit_concurrency": limits.max_connections,
        "timeout_keep_alive": limits.keep_alive_s,
    }
    return create_app(settings), protocol, options


def _floor() -> tuple[Any, Any, dict[str, Any]]:
    """The empty endpoint (`scripts/empty_app.py`) on plain uvicorn httptools."""
    from empty_app import create_app
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    return create_app(), HttpToolsProtocol, {}


async def _child(
    streams: int, steps: int, profile: str | None = None, floor: bool = False
) -> dict[str, float]:
    import uvicorn
    from uvicorn.server import ServerState

    app, protocol, options = _floor() if floor else _seqserve()
    config = uvicorn.Config(app, access_log=False, log_config=None, lifespan="off", **options)
    config.load()
    state = ServerState()
    async with app.router.lifespan_context(app):
        conns = [Connection(protocol, config, state) for _ in range(streams)]
        for conn in conns:
            sid = "floor"
            if not floor:
                answer = await conn.call(_request("POST", "/v1/sessions", b'{"model": "co2"}'))
                sid = json.loads(answer.split(b"\r\n\r\n", 1)[1])["id"]
            conn.next_request = _request("POST", f"/v1/sessions/{sid}/steps", STEP_BODY)
            await conn.call(conn.next_request)  # a session's first step differs

        async def run(total: int) -> None:
            for conn in conns:
                conn.done, conn.running = 0, True
                conn.protocol.data_received(conn.next_request)
            while sum(c.done for c in conns) < total:
                await asyncio.sleep(0.001)
            for conn in conns:  # stop; the answers in flight still count
                conn.running = False
            while any(c.sending or not c.protocol.cycle.response_complete for c in conns):
                await asyncio.sleep(0.001)

        await run(steps // 5)  # warm-up
        profiler = cProfile.Profile() if profile else None
        cpu, loop_cpu, wall = time.process_time(), time.thread_time(), time.perf_counter()
        if profiler is not None:
            profiler.enable()  # the event loop's thread only (where the request path runs)
        await run(steps)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        cpu, loop_cpu, wall = (
            time.process_time() - cpu,
            time.thread_time() - loop_cpu,
            time.perf_counter() - wall,
        )
        done = sum(c.done for c in conns)
        for conn in conns:
            conn.protocol.connection_lost(None)
    return {
        "cpu_us": 1e6 * cpu / done,
        "loop_us": 1e6 * loop_cpu / done,
        "steps_per_s": done / wall,
    }


def _measure(python: str, streams: int, steps: int, floor: bool = False) -> dict[str, float]:
    return path_section.measure(python, streams, steps, floor)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", help="python of build A (the baseline)")
    parser.add_argument("--b", default=sys.executable, help="python of build B (the change)")
    parser.add_argument("--streams", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--steps", type=int, default=20_000, help="steps a round measures")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--a-label", default="A", help="what build A is (a commit, a branch)")
    parser.add_argument("--b-label", default="B", help="what build B is")
    parser.add_argument("--note", default="", help="a sentence recorded under the table")
    parser.add_argument("--record", action="store_true", help="write docs/bench_path.json + doc")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile", help="with --child: cProfile the measured steps to this file")
    parser.add_argument(
        "--floor", action="store_true", help="also the empty endpoint (scripts/empty_app.py)"
    )
    args = parser.parse_args()
    if args.child:
        import uvloop

        result = uvloop.run(_child(args.streams[0], args.steps, args.profile, args.floor))
        print(json.dumps(result))
        return 0
    builds = {"A": args.a, "B": args.b} if args.a else {"B": args.b}
    if args.floor:
        builds["floor"] = args.b
    labels = {"A": args.a_label, "B": args.b_label, "floor": "empty endpoint (floor)"}
    table: list[list[str]] = []
    for streams in args.streams:
        rows: dict[str, list[dict[str, float]]] = {name: [] for name in builds}
        for k in range(args.rounds):
            order = list(builds.items())
            for name, python in order if k % 2 == 0 else order[::-1]:
                rows[name].append(_measure(python, streams, args.steps, name == "floor"))
        parts = []
        for name, results in rows.items():
            cpu = statistics.median(r["cpu_us"] for r in results)
            best = min(r["cpu_us"] for r in results)
            loop = statistics.median(r["loop_us"] for r in results)
            parts.append(
                f"{name} {cpu:.1f} µs CPU/step (best {best:.1f}; {loop:.1f} on the event loop)"
            )
            table.append([str(streams), labels[name], f"{cpu:.0f}", f"{best:.0f}", f"{loop:.0f}"])
        line = f"{streams} streams: " + " | ".join(parts)
        if "A" in rows:
            paired = statistics.median(
                b["cpu_us"] / a["cpu_us"] for a, b in zip(rows["A"], rows["B"], strict=True)
            )
            best_ratio = min(r["cpu_us"] for r in rows["B"]) / min(r["cpu_us"] for r in rows["A"])
            line += f" | B/A CPU: {paired:.2f}x median of paired rounds, {best_ratio:.2f}x best"
        print(line, flush=True)
    if args.record:
        _record(args, table)
    return 0


def _record(args: argparse.Namespace, table: list[list[str]]) -> None:
    docs = Path(__file__).resolve().parents[1] / "docs"
    path = docs / "bench_path.json"
    runs = json.loads(path.read_text()) if path.is_file() else []
    title = f"A = {args.a_label}, B = {args.b_label}" if args.a else args.b_label
    runs = [r for r in runs if r["title"] != title]
    runs.append(
        {
            "title": title,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": "python scripts/bench_path.py " + shlex.join(sys.argv[1:]),
            "header": ["streams", "build", "µs CPU/step (median)", "best round", "event loop"],
            "rows": table,
            "note": args.note,
        }
    )
    path.write_text(json.dumps(runs, indent=1) + "\n")
    markdown.splice(docs / "benchmarks.md", path_section.HEADING, path_section.section(path))


if __name__ == "__main__":
    raise SystemExit(main())
