"""The HTTP side of scripts/container_check.sh: drive a containerised seqserve and compare what it
answers with the local NumPy reference LSTM (model/reference.py) applied to the repository's
own model files, with the manifest's preprocessing written out independently of service/.

    python -m scripts.container_probe ready  URL [--upstreams N]
    python -m scripts.container_probe image  URL --state FILE     (v1 session, then V2)
    python -m scripts.container_probe resume URL --state FILE     (the session after a restart)
    python -m scripts.container_probe stack  URL --stop CONTAINER (through nginx; one stopped)

Run it from the repository root (as a module, so that `tests.service.expected` imports).

Every check raises (exit 1) with a message saying what differed. Waiting is polling with a
deadline, never a fixed sleep.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tests.service.expected import Expected

ROOT = Path(__file__).resolve().parent.parent

MODEL = "co2"
MODEL_DIR = max(  # the newest version: what a session that names none gets
    (ROOT / "service" / "model_repository" / MODEL).glob("[0-9]*"), key=lambda p: int(p.name)
)
TOL = 1e-5  # the project's tolerance against the reference (values in ppm, float64 engine)
V2_RTOL = 2e-7  # V2's `y` is FP32 on the wire: one rounding on top (docs/v2.md)
READY_TIMEOUT_S = 120.0
RETRY_TIMEOUT_S = 60.0
UPSTREAM = "X-Seqserve-Upstream"
RETRIES: list[str] = []  # the transient failures step() retried through


class CheckFailed(Exception):
    pass


def say(msg: str) -> None:
    print(f"container_probe: {msg}", flush=True)


def series(n: int, seed: int = 7) -> np.ndarray:
    """A weekly CO2-like series in ppm [n, 1], exactly representable in float32 (V2 sends FP32)."""
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    ppm = 355 + 0.03 * t + 3 * np.sin(2 * np.pi * t / 52.18) + rng.normal(0, 0.3, n)
    return np.round(ppm, 2).astype(np.float32).astype(np.float64)[:, None]


def close(got: Any, want: np.ndarray, what: str, rtol: float = 0.0) -> None:
    got = np.asarray(got, dtype=np.float64)
    if got.shape != want.shape:
        raise CheckFailed(f"{what}: shape {got.shape}, expected {want.shape}")
    err = np.abs(got - want)
    if not np.all(err <= TOL + rtol * np.abs(want)):
        raise CheckFailed(f"{what}: max abs error {err.max():.3g} vs the NumPy reference")


def poll(deadline_s: float, what: str, attempt: Callable[[], str | None]) -> None:
    """Call `attempt` until it returns None (done); it returns why not yet otherwise."""
    end = time.monotonic() + deadline_s
    delay = 0.05
    why = "never tried"
    while time.monotonic() < end:
        why = attempt() or ""
        if not why:
            return
        time.sleep(delay)  # back-off between polls, not a wait for a server
        delay = min(delay * 1.5, 1.0)
    raise CheckFailed(f"{what} within {deadline_s:.0f} s: {why}")


def answered_by(resp: httpx.Response) -> str:
    """The replica nginx ended on (the last of `$upstream_addr` when it tried several)."""
    return resp.headers.get(UPSTREAM, "direct").split(",")[-1].strip()


# ---- subcommands ----------------------------------------------------------------------------


def check_ready(client: httpx.Client, upstreams: int) -> None:
    """/readyz answers 200 (from `upstreams` distinct replicas when behind nginx)."""
    ready_from: set[str] = set()

    def attempt() -> str | None:
        try:
            r = client.get("/readyz")
        except httpx.TransportError as e:
            return repr(e)
        if r.status_code != 200:
            return f"/readyz {r.status_code} {r.text[:200]}"
        if r.json().get("models") != [MODEL]:
            raise CheckFailed(f"/readyz lists {r.json().get('models')}, expected [{MODEL!r}]")
        ready_from.add(answered_by(r))
        if len(ready_from) < upstreams:
            return f"ready: {sorted(ready_from)}, want {upstreams} replicas"
        return None

    poll(READY_TIMEOUT_S, "ready", attempt)
    say(f"ready ({', '.join(sorted(ready_from))})")


def check_model(client: httpx.Client) -> None:
    """The image serves the very model file of this checkout."""
    meta = client.get(f"/v1/models/{MODEL}").raise_for_status().json()
    local = hashlib.sha256((MODEL_DIR / "model.onnx").read_bytes()).hexdigest()
    if local not in json.dumps(meta):
        raise CheckFailed(f"the served {MODEL} is not this checkout's model.onnx ({local})")


def create(client: httpx.Client) -> str:
    r = client.post("/v1/sessions", json={"model": MODEL})
    if r.status_code != 201:
        raise CheckFailed(f"create session: {r.status_code} {r.text[:300]}")
    return str(r.json()["id"])


def step(client: httpx.Client, sid: str, chunk: np.ndarray, at: int) -> httpx.Response:
    """One step request with its start index; retried while replicas come and go. The index
    makes a retry of an applied request a replay, never a second application."""
    body = {"inputs": chunk.tolist(), "step": at}
    result: list[httpx.Response] = []

    def attempt() -> str | None:
        try:
            r = client.post(f"/v1/sessions/{sid}/steps", json=body)
        except httpx.TransportError as e:
            RETRIES.append(repr(e))
            return repr(e)
        if r.status_code in (502, 503, 504):
            RETRIES.append(str(r.status_code))
            return f"{r.status_code} {r.text[:200]}"
        if r.status_code != 200:
            raise CheckFailed(f"step at {at}: {r.status_code} {r.text[:300]}")
        if r.json()["step"] != at + len(chunk):
            raise CheckFailed(f"step at {at}: new index {r.json()['step']}, not {at + len(chunk)}")
        result.append(r)
        return None

    poll(RETRY_TIMEOUT_S, f"step at {at}", attempt)
    return result[0]


def check_v2(url: str, exp: Expected) -> None:
    """tritonclient.http, unmodified: a stateful sequence in two requests and a stateless call."""
    import tritonclient.http as httpclient

    raw = series(24, seed=3)
    want = exp.run(raw)[0]
    client = httpclient.InferenceServerClient(url.removeprefix("http://"))
    try:
        if not client.is_model_ready(MODEL):
            raise CheckFailed("V2: the model is not ready")
        got = []
        seq_id = int.from_bytes(hashlib.sha256(url.encode()).digest()[:6], "big")
        for part, (lo, hi) in enumerate([(0, 10), (10, 24)]):
            x = httpclient.InferInput("x", [1, hi - lo, 1], "FP32")
            x.set_data_from_numpy(raw[None, lo:hi].astype(np.float32))
            res = client.infer(
                MODEL, [x], sequence_id=seq_id, sequence_start=part == 0, sequence_end=part == 1
            )
            got.append(res.as_numpy("y")[0])
        close(np.concatenate(got), want, "V2 sequence", rtol=V2_RTOL)
        x = httpclient.InferInput("x", [1, 24, 1], "FP32")
        x.set_data_from_numpy(raw[None].astype(np.float32), binary_data=False)
        res = client.infer(MODEL, [x])
        close(res.as_numpy("y")[0], want, "V2 stateless", rtol=V2_RTOL)
    finally:
        client.close()
    say("V2 (tritonclient.http): a two-request sequence and a stateless call match the reference")


def run_image(client: httpx.Client, url: str, state: Path, exp: Expected) -> None:
    check_ready(client, 1)
    check_model(client)
    raw = series(40)
    want = exp.run(raw)[0]
    sid = create(client)
    got = []
    for lo, hi in [(0, 1), (1, 4), (4, 12), (12, 20)]:
        got += step(client, sid, raw[lo:hi], lo).json()["outputs"]
    close(got, want[:20], "v1 session, steps 0-19")
    fc = client.post(f"/v1/sessions/{sid}/forecast", json={"horizon": 3}).raise_for_status()
    close(fc.json()["forecast"], exp.forecast(raw[:20], 3), "v1 forecast")
    say("v1 session: 20 steps in 4 chunks and a forecast match the reference")
    check_v2(url, exp)
    state.write_text(json.dumps({"session": sid, "step": 20}))


def run_resume(client: httpx.Client, state: Path, exp: Expected) -> None:
    """After SIGTERM (snapshot to the volume) and a fresh start (restored), the session goes on."""
    check_ready(client, 1)
    saved = json.loads(state.read_text())
    sid, at = saved["session"], saved["step"]
    r = client.get(f"/v1/sessions/{sid}")
    if r.status_code != 200 or r.json()["step"] != at:
        raise CheckFailed(f"session after restart: {r.status_code} {r.text[:300]}")
    raw = series(40)
    got = step(client, sid, raw[at:], at).json()["outputs"]
    close(got, exp.run(raw)[0][at:], "v1 session after the restart")
    say(f"the session survived SIGTERM + restart at step {at} and goes on matching the reference")


def run_stack(client: httpx.Client, url: str, stop: str, exp: Expected) -> None:
    """A stream through nginx across both replicas; one replica is stopped (SIGTERM, drain)
    while the stream runs, and the stream carries on through the other one."""
    check_ready(client, 2)
    check_model(client)
    check_v2(url, exp)  # a V2 sequence is a session in Redis too: its requests cross replicas
    raw = series(20_000, seed=11)  # the stream runs until the stop is over; it needs a few s
    sid = create(client)
    got: list[list[float]] = []
    served: list[tuple[int, str]] = []
    stopper: threading.Thread | None = None
    stopped = threading.Event()
    stop_result: list[subprocess.CompletedProcess[str]] = []

    stop_took: list[float] = []

    def stop_replica() -> None:
        t0 = time.monotonic()
        proc = subprocess.run(
            ["podman", "stop", "-t", "30", stop], capture_output=True, text=True, check=False
        )
        stop_took.append(time.monotonic() - t0)
        stop_result.append(proc)
        stopped.set()

    def after_stop() -> int:
        return sum(who.endswith("(after stop)") for _, who in served)

    at, request = 0, 0
    deadline = time.monotonic() + RETRY_TIMEOUT_S
    # at least 100 steps, and 10 requests sent after the stopped replica is gone
    while at < 100 or after_stop() < 10:
        if request == 25:
            say(f"stopping {stop} mid-stream (SIGTERM) at step {at}")
            stopper = threading.Thread(target=stop_replica)
            stopper.start()
        n = 1 + request % 3
        if at + n > len(raw) or time.monotonic() > deadline:
            raise CheckFailed(f"`podman stop {stop}` did not finish while {at} steps went by")
        was_stopped = stopped.is_set()
        r = step(client, sid, raw[at : at + n], at)
        got += r.json()["outputs"]
        served.append((request, answered_by(r) + (" (after stop)" if was_stopped else "")))
        at += n
        request += 1
    assert stopper is not None
    stopper.join(60)
    if not stop_result or stop_result[0].returncode != 0:
        raise CheckFailed(f"podman stop {stop}: {stop_result}")
    close(got, exp.run(raw[:at])[0], f"stream of {at} steps through nginx")
    before = {who for i, who in served if i < 25}
    if len(before) < 2:
        raise CheckFailed(f"nginx sent every step before the stop to {before}: no round robin")
    r = client.get(f"/v1/sessions/{sid}").raise_for_status()
    if r.json()["step"] != at:
        raise CheckFailed(f"session step {r.json()['step']}, expected {at}")
    fc = client.post(f"/v1/sessions/{sid}/forecast", json={"horizon": 2}).raise_for_status()
    close(fc.json()["forecast"], exp.forecast(raw[:at], 2), "forecast after the stop")
    survivors = {who for _, who in served if who.endswith("(after stop)")}
    say(f"{stop} drained and exited in {stop_took[0]:.1f} s while the stream went on")
    say(
        f"{len(served)} requests, {at} steps and a forecast match the reference; before the "
        f"stop served by {sorted(before)}, after it by {sorted(survivors)}; "
        f"{len(RETRIES)} retried ({', '.join(sorted(set(RETRIES))) or 'none needed'})"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["ready", "image", "resume", "stack"])
    p.add_argument("url", help="base URL, e.g. http://127.0.0.1:8000")
    p.add_argument("--upstreams", type=int, default=1, help="ready: distinct replicas to see")
    p.add_argument("--state", type=Path, help="image/resume: where the session id is kept")
    p.add_argument("--stop", help="stack: the replica container to stop mid-stream")
    args = p.parse_args(argv)
    exp = Expected(MODEL_DIR)
    try:
        with httpx.Client(base_url=args.url, timeout=30) as client:
            if args.what == "ready":
                check_ready(client, args.upstreams)
            elif args.what == "image":
                run_image(client, args.url, args.state, exp)
            elif args.what == "resume":
                run_resume(client, args.state, exp)
            else:
                run_stack(client, args.url, args.stop, exp)
    except CheckFailed as e:
        print(f"container_probe: FAILED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
