"""Where a gRPC stream step's time goes: seqserve's gRPC stream beside its WebSocket and
beside grpcio alone (scripts/peers/grpc_echo_server.py: the same messages, no model).

Each round runs the three loads one after the other at the same concurrency, each with 2 raw
client processes (as `seqserve bench`). Besides steps/s it reads the server's event-loop
thread CPU (the thread that runs asyncio, and grpcio's callbacks on it) and the whole
process's CPU per message: the echo's figures are what grpcio costs before any step logic.

    python scripts/bench_grpc_floor.py --rounds 5 --seconds 6 [--json docs/bench_grpc_floor.json]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from benchlib import grpcload, wsload
from benchlib.client import Client
from launch import ServerProcess, free_port

SCRIPTS = Path(__file__).resolve().parent
MODEL = "co2"


def _loop_cpu(pid: int) -> float:
    """CPU seconds of the process's main thread (its event loop)."""
    for thread in psutil.Process(pid).threads():
        if thread.id == pid:
            return float(thread.user_time + thread.system_time)
    raise RuntimeError(f"no main thread in process {pid}")


def _process_cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the gRPC echo server exited early")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the gRPC echo server did not listen on {port}")


def _measured(pid: int, run: Any) -> dict[str, float]:
    loop0, cpu0 = _loop_cpu(pid), _process_cpu(pid)
    result = run()
    loop1, cpu1 = _loop_cpu(pid), _process_cpu(pid)
    n = max(result.messages, 1)
    return {
        "rate": result.rate,
        "p50_ms": result.p50_ms,
        "loop_us": (loop1 - loop0) / n * 1e6,
        "process_us": (cpu1 - cpu0) / n * 1e6,
        "errors": result.errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--streams", type=int, default=64)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="bench-grpc-floor-"))
    grpc_port, echo_port = free_port(), free_port()
    seq = ServerProcess.seqserve(None, logs, SEQSERVE_GRPC_PORT=str(grpc_port)).start()
    with (logs / "echo.log").open("ab") as log:
        echo = subprocess.Popen(
            [
                sys.executable,
                str(SCRIPTS / "peers" / "grpc_echo_server.py"),
                "--port",
                str(echo_port),
            ],
            stdout=log,
            stderr=log,
        )
    rows: dict[str, list[dict[str, float]]] = {"ws": [], "grpc": [], "echo": []}
    try:
        _wait_port(echo_port, echo)
        reason = grpcload.check(f"127.0.0.1:{grpc_port}", MODEL)
        if reason is not None:
            raise RuntimeError(f"seqserve gRPC: {reason}")
        client = Client(seq.url)
        ids = client.create_sessions(args.streams, MODEL, idle_ttl_s=3600.0)
        client.close()
        n, s = args.streams, args.seconds
        loads = {
            "ws": (seq.pid, lambda: wsload.run(seq.url, ids, n, s, 2)),
            "grpc": (seq.pid, lambda: grpcload.run(f"127.0.0.1:{grpc_port}", MODEL, n, s, 2)),
            "echo": (echo.pid, lambda: grpcload.run(f"127.0.0.1:{echo_port}", MODEL, n, s, 2)),
        }
        for r in range(args.rounds):
            for name, (pid, run) in loads.items():
                point = _measured(pid, run)
                rows[name].append(point)
                print(
                    f"round {r + 1} {name:5}: {point['rate']:7,.0f}/s, event loop "
                    f"{point['loop_us']:5.0f} µs a message, process {point['process_us']:5.0f} µs",
                    flush=True,
                )
    finally:
        echo.terminate()
        echo.wait(10)
        seq.stop()
    med = {
        name: {key: statistics.median(p[key] for p in points) for key in points[0]}
        for name, points in rows.items()
    }
    labels = {
        "ws": "seqserve WebSocket steps",
        "grpc": "seqserve gRPC stream steps",
        "echo": "grpcio echo (no model)",
    }
    print(f"\nmedians of {args.rounds} rounds, {args.streams} sequences, 2 client processes:")
    print("| load | steps/s | × WebSocket | event loop µs a message | process µs a message |")
    print("|---|---|---|---|---|")
    for name, m in med.items():
        print(
            f"| {labels[name]} | {m['rate']:,.0f} | {m['rate'] / med['ws']['rate']:.2f}× | "
            f"{m['loop_us']:.0f} | {m['process_us']:.0f} |"
        )
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {"config": vars(args) | {"json": str(args.json)}, "rounds": rows, "medians": med},
                indent=1,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
