"""wrk (Debian's `wrk` package) with a generated Lua script: one thread per connection, and
each connection steps its own session, one timestep per request, with no step index.

One wrk thread per connection is what makes "each connection owns one session" exact: wrk's
Lua `request()` is not told which connection it serves, but a thread with one connection and
a static request is (and a static request is wrk's cheapest path).
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

MARK = "BENCH-JSON "
STEP_BODY = '{"inputs": [[415.2]]}'

_LUA = """
local ids = {%(ids)s}
local path = "%(path)s"
local n = 0
function setup(thread)
  n = n + 1
  thread:set("sid", ids[(n - 1) %% #ids + 1])
end
function init(args)
  wrk.method = "%(method)s"
  wrk.body = string.gsub('%(body)s', "{id}", sid)
  wrk.headers["Content-Type"] = "application/json"
  wrk.path = string.gsub(path, "{id}", sid)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, '
    .. '"mean_us": %%f, "max_us": %%d, "errors": %%d, "non2xx": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, latency.max, e.connect + e.read + e.write + e.timeout, e.status))
end
"""


@dataclass(frozen=True)
class WrkResult:
    connections: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    non2xx: int
    wrk_cpu_s: float  # CPU time the load generator itself used

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def available() -> bool:
    return shutil.which("wrk") is not None


def lua_script(ids: list[str], path: str, method: str = "POST", body: str = STEP_BODY) -> str:
    quoted = ", ".join(f'"{i}"' for i in ids)
    return _LUA % {
        "ids": quoted,
        "path": path,
        "method": method,
        "body": body,
        "mark": MARK,
    }


def run(
    url: str,
    ids: list[str],
    connections: int,
    seconds: float,
    path: str = "/v1/sessions/{id}/steps",
    method: str = "POST",
    body: str = STEP_BODY,
    timeout_s: float = 10.0,
) -> WrkResult:
    """`connections` connections (one thread each) for `seconds`; ids[k] for connection k,
    put wherever `{id}` appears in the path or the body."""
    if len(ids) < connections and "{id}" in path + body:
        raise ValueError(f"{connections} connections need {connections} session ids")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(lua_script(ids[:connections], path, method, body))
        script = Path(fh.name)
    argv = ["wrk", f"-t{connections}", f"-c{connections}", f"-d{max(seconds, 1):.0f}s"]
    argv += [f"--timeout={timeout_s:.0f}s", "-s", str(script), url]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    finally:
        script.unlink()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    data = json.loads(line[len(MARK) :])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return WrkResult(
        connections=connections,
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6 or time.monotonic() - started,
        p50_ms=data["p50_us"] / 1e3,
        p99_ms=data["p99_us"] / 1e3,
        errors=data["errors"],
        non2xx=data["non2xx"],
        wrk_cpu_s=cpu,
    )
