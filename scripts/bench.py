"""seqserve benchmarks, side by side in one run, written to docs/benchmarks.md.

Measures the floor (ONNX Runtime in process, an empty endpoint on the same stack), seqserve
over HTTP and WebSocket, step latency against history length, memory per idle session, and a
naive tutorial-style baseline (issue 4, item 5).

    python scripts/bench.py            # full run, about 10 minutes; writes docs/benchmarks.md
    python scripts/bench.py --quick    # smoke run, about 2 minutes; writes to a temp folder
    seqserve bench [options]           # the same, from a source checkout

It starts every server it needs (seqserve, an empty endpoint on the same stack, the naive
baseline) on free loopback ports. HTTP load comes from wrk (Debian's `wrk` package) with a
generated Lua script; WebSocket load from several client processes.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

FULL = {"duration": 6.0, "repeats": 5, "samples": 200, "sessions": 1_000_000, "http_rss_s": 30}
QUICK = {"duration": 2.0, "repeats": 1, "samples": 30, "sessions": 50_000, "http_rss_s": 3}


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def build_parser(prog: str = "python scripts/bench.py") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short smoke run, a few s a point")
    p.add_argument("--duration", type=float, help="seconds per load point (8; quick 2)")
    p.add_argument("--repeats", type=int, help="rounds of every load point (3; quick 1)")
    p.add_argument("--streams", type=_ints, default=[1, 16, 64, 256], help="HTTP streams")
    p.add_argument("--naive-streams", type=_ints, default=[1, 64], help="naive streams")
    p.add_argument("--peer-streams", type=_ints, default=[16, 64],
                   help="HTTP streams for Mosec with a session dict (issue 13's peer)")  # fmt: skip
    p.add_argument("--ws-streams", type=_ints, default=[1, 64], help="WebSocket streams")
    p.add_argument("--ws-procs", type=int, default=2, help="WebSocket (and gRPC) client processes")
    p.add_argument("--grpc-streams", type=_ints, default=[64], help="gRPC streaming sequences")
    p.add_argument("--grpc-client", choices=["raw", "aio"], default="raw",
                   help="gRPC load client: raw HTTP/2 frames, or grpc.aio to compare")  # fmt: skip
    p.add_argument("--history", type=_ints, default=[10, 100, 1000, 10000])
    p.add_argument("--samples", type=int, help="timed steps per history length (200; quick 30)")
    p.add_argument("--sessions", type=int, help="sessions for RSS in process (1M; quick 50k)")
    p.add_argument("--http-rss-seconds", type=float, help="seconds creating sessions over HTTP")
    p.add_argument("--repository", type=Path, help="model repository (default: the bundled one)")
    p.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                   help="extra environment for the seqserve server (repeatable)")  # fmt: skip
    sections = ["floor", "http", "peers", "cpu", "predict", "ws", "grpc", "history", "rss"]
    sections += ["naive", "extras"]
    p.add_argument("--skip", action="append", default=[], choices=sections, help="leave out")
    p.add_argument("--out-dir", type=Path, help="where benchmarks.md goes (docs/; quick: temp)")
    p.add_argument("--from-json", type=Path, help="measure nothing: re-render this results file")
    return p


def _section(results: dict[str, Any], name: str, fn: Callable[[], Any]) -> None:
    """Run one section; a failure is recorded and reported, and the run goes on."""
    print(f"== {name}", flush=True)
    started = time.monotonic()
    try:
        results[name] = fn()
    except Exception as exc:  # one broken section must not lose the others
        traceback.print_exc()
        results.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"
    results.setdefault("timings_s", {})[name] = round(time.monotonic() - started, 1)


def main(argv: Sequence[str] | None = None, prog: str = "python scripts/bench.py") -> int:
    from benchlib import goals, wrk
    from benchlib.machine import describe
    from benchlib.sections import Bench

    args = build_parser(prog).parse_args(argv)
    if args.from_json:
        results = json.loads(args.from_json.read_text())
        return _report(results, args.out_dir or args.from_json.parent, write_json=False)
    defaults = QUICK if args.quick else FULL
    for key in ("duration", "repeats", "samples", "sessions"):
        if getattr(args, key) is None:
            setattr(args, key, defaults[key])
    if args.http_rss_seconds is None:
        args.http_rss_seconds = defaults["http_rss_s"]
    if not wrk.available() and "http" not in args.skip:
        print(
            "wrk is not installed: `apt-get install wrk` (Debian) or --skip http", file=sys.stderr
        )
        return 2
    out_dir = args.out_dir or (
        Path(tempfile.mkdtemp(prefix="bench-")) if args.quick else REPO / "docs"
    )
    command = " ".join([prog, *map(shlex.quote, argv if argv is not None else sys.argv[1:])])
    started = time.monotonic()
    results: dict[str, Any] = {
        "meta": {
            "command": command,
            "date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "machine": describe(REPO),
        },  # fmt: skip
        "config": {k: v for k, v in vars(args).items() if k not in ("out_dir", "repository")},
        "baseline": goals.baseline(REPO / "docs" / "benchmarks.json"),  # before this run
    }
    bench = Bench(args, results)
    try:
        bench.prepare()
        if "floor" not in args.skip:
            _section(results, "floor_ort", bench.floor)
        if "cpu" not in args.skip:
            _section(results, "cpu", bench.cpu)
        bench.start_servers()
        if "http" not in args.skip:
            _section(results, "http", bench.http)
        if "predict" not in args.skip:
            _section(results, "predict", bench.predict)
        if "ws" not in args.skip:
            _section(results, "ws", bench.ws)
        if "grpc" not in args.skip:
            _section(results, "grpc", bench.grpc)
        if "history" not in args.skip:
            _section(results, "history", bench.history)
        if "extras" not in args.skip:
            _section(results, "extras", bench.extras)
        bench.stop_servers()
        if "rss" not in args.skip:
            _section(results, "rss", bench.rss)
    finally:
        bench.stop_servers()
    results["meta"]["wall_s"] = round(time.monotonic() - started)
    return _report(results, out_dir)


def _report(results: dict[str, Any], out_dir: Path, write_json: bool = True) -> int:
    from benchlib import doc, table

    print()
    print(table.text(table.rows(results)))
    print()
    for v in doc.verdict_lines(results):
        print(v)
    written = doc.write(results, out_dir)
    if write_json:
        written.append(out_dir / "benchmarks.json")
        written[-1].write_text(json.dumps(results, indent=1, default=str))
    print(f"\nwrote {', '.join(str(p) for p in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
