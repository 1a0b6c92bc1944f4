"""V2 binary stateful step throughput, beside v1 session steps at the same concurrency.

Each wrk connection (one wrk thread each) owns one stream and repeats one request for it:
  v1  POST /v1/sessions/{id}/steps          {"inputs": [[x]]}, JSON
  v2  POST /v2/models/{model}/infer         binary: one FP32 timestep, sequence_id, binary y
so both sides do the same work (one timestep of one live stream per request). V2 sequences are
STARTed before the clock starts and ENDed after. `seqserve bench` can call `compare()`;
alone (a server is started on the shipped model unless --url is given):

    python scripts/bench_v2.py --streams 16 64 --seconds 10
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import orjson

MARK = "BENCH-JSON "
VALUE = 415.2
JSON = {"Content-Type": "application/json"}
_LUA = """
local paths = {%(paths)s}
local bodies = {%(bodies)s}
local lengths = {%(lengths)s}
local n = 0
function setup(thread)
  n = n + 1
  thread:set("k", n)
end
function init(args)
  wrk.method = "POST"
  wrk.path = paths[k]
  wrk.body = bodies[k]
  if lengths[k] > 0 then
    wrk.headers["Inference-Header-Content-Length"] = tostring(lengths[k])
  else
    wrk.headers["Content-Type"] = "application/json"
  end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('%(mark)s{"requests": %%d, "duration_us": %%d, "p50_us": %%d, '
    .. '"p99_us": %%d, "errors": %%d, "non2xx": %%d}\\n', summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.connect + e.read + e.write + e.timeout,
    e.status))
end
"""


@dataclass(frozen=True)
class Load:
    protocol: str
    streams: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    failed: int

    @property
    def steps_per_s(self) -> float:
        return self.requests / self.seconds


def _lua_string(data: bytes) -> str:
    return '"' + "".join(f"\\{b:03d}" for b in data) + '"'


def v2_request(seq_id: str, features: int, start: bool = False, end: bool = False) -> bytes:
    """The JSON header of a binary V2 request: one FP32 timestep of sequence `seq_id`."""
    params = {"sequence_id": seq_id, "sequence_start": start, "sequence_end": end}
    x = {"name": "x", "datatype": "FP32", "shape": [1, 1, features]}
    header = {
        "inputs": [{**x, "parameters": {"binary_data_size": 4 * features}}],
        "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
        "parameters": params,
    }
    return orjson.dumps(header)


def _post(
    conn: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]
) -> bytes:
    conn.request("POST", path, body, headers)
    resp = conn.getresponse()
    data = resp.read()
    if resp.status >= 300:
        raise RuntimeError(f"POST {path} -> {resp.status}: {data[:300]!r}")
    return data


def _v2(
    conn: http.client.HTTPConnection, model: str, seq_id: str, features: int, **flags: bool
) -> None:
    head = v2_request(seq_id, features, **flags)
    blob = np.full(features, VALUE, np.float32).tobytes()
    headers = {"Inference-Header-Content-Length": str(len(head))}
    _post(conn, f"/v2/models/{model}/infer", head + blob, headers)


def _wrk(url: str, jobs: list[tuple[str, bytes, int]], seconds: float) -> dict[str, float]:
    script = _LUA % {
        "paths": ", ".join(json.dumps(p) for p, _, _ in jobs),
        "bodies": ", ".join(_lua_string(b) for _, b, _ in jobs),
        "lengths": ", ".join(str(n) for _, _, n in jobs),
        "mark": MARK,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
    c = len(jobs)
    argv = ["wrk", f"-t{c}", f"-c{c}", f"-d{max(seconds, 1):.0f}s", "-s", fh.name, url]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    finally:
        Path(fh.name).unlink()
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    result: dict[str, float] = json.loads(line[len(MARK) :])
    return result


def measure(url: str, protocol: str, streams: int, seconds: float, model: str = "co2") -> Load:
    """`streams` streams of one-timestep requests over `protocol` ("v1" or "v2")."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80)
    meta = json.loads(_get(conn, f"/v2/models/{model}"))
    features = int(meta["inputs"][0]["shape"][-1])
    tag = f"bench-{time.monotonic_ns()}"
    jobs: list[tuple[str, bytes, int]] = []
    for k in range(streams):
        if protocol == "v1":
            created = _post(conn, "/v1/sessions", orjson.dumps({"model": model}), JSON)
            path = f"/v1/sessions/{orjson.loads(created)['id']}/steps"
            jobs.append((path, orjson.dumps({"inputs": [[VALUE] * features]}), 0))
        else:
            seq_id = f"{tag}-{k}"
            _v2(conn, model, seq_id, features, start=True)
            head = v2_request(seq_id, features)
            body = head + np.full(features, VALUE, np.float32).tobytes()
            jobs.append((f"/v2/models/{model}/infer", body, len(head)))
    conn.close()
    data = _wrk(url, jobs, seconds)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80)
    for k in range(streams if protocol == "v2" else 0):
        _v2(conn, model, f"{tag}-{k}", features, end=True)
    conn.close()
    return Load(
        protocol,
        streams,
        int(data["requests"]),
        data["duration_us"] / 1e6,
        data["p50_us"] / 1e3,
        data["p99_us"] / 1e3,
        int(data["errors"] + data["non2xx"]),
    )


def _get(conn: http.client.HTTPConnection, path: str) -> bytes:
    conn.request("GET", path)
    resp = conn.getresponse()
    return resp.read()


def compare(
    url: str, streams: list[int], seconds: float, model: str = "co2"
) -> list[dict[str, float]]:
    """Rows of v1 and V2 steps/s at each stream count, with the V2/v1 ratio."""
    rows = []
    for n in streams:
        v1, v2 = (measure(url, p, n, seconds, model) for p in ("v1", "v2"))
        rows.append(
            {
                "streams": n,
                "v1_steps_per_s": round(v1.steps_per_s, 1),
                "v2_steps_per_s": round(v2.steps_per_s, 1),
                "v2_over_v1": round(v2.steps_per_s / v1.steps_per_s, 3),
                "v1_p99_ms": round(v1.p99_ms, 2),
                "v2_p99_ms": round(v2.p99_ms, 2),
                "failed": v1.failed + v2.failed,
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server (default: start one on the shipped model)")
    parser.add_argument("--streams", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--model", default="co2")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench_v2: needs wrk on PATH (apt-get install wrk)", file=sys.stderr)
        return 2
    if args.url:
        rows = compare(args.url, args.streams, args.seconds, args.model)
    else:
        from launch import ServerProcess

        shipped = Path(__file__).parents[1] / "service" / "model_repository"
        with tempfile.TemporaryDirectory() as logs:
            server = ServerProcess.seqserve(shipped, Path(logs)).start()
            try:
                rows = compare(server.url, args.streams, args.seconds, args.model)
            finally:
                server.stop()
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
