"""Exactly-once under loss: requests dropped and answers lost by a proxy, replicas killed.

Through `FaultProxy` (about 15% of requests dropped before the server sees them, 15% of
answers lost after it applied them), 300 steps of one session in uneven chunks must equal one
stateless predict of the whole sequence, and the session must end at step 300: nothing lost,
nothing applied twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from scripts.launch import ServerProcess
from seqserve.client import Client
from tests.e2e.client.fault_proxy import FaultProxy
from tests.e2e.conftest import StartServer

MODEL, FEATURES, STEPS = "multi", 3, 300
TOL = 1e-5
NUMPY = orjson.OPT_SERIALIZE_NUMPY


def chunks(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.5, (STEPS, FEATURES))
    cuts = np.cumsum(rng.integers(1, 9, STEPS))
    return np.split(x, cuts[cuts < STEPS])


def expected(url: str, parts: list[np.ndarray]) -> np.ndarray:
    with Client(url) as direct:
        return direct.predict(MODEL, [np.concatenate(parts)])["outputs"][0]


@pytest.fixture
def proxy(server: ServerProcess) -> Iterator[FaultProxy]:
    proxy = FaultProxy(server.port, seed=14).start()
    yield proxy
    proxy.stop()


def lossy_client(*urls: str) -> Client:
    # one exchange per connection through the proxy; a generous budget for a 30% loss rate
    return Client(list(urls), keepalive=False, retries=40, deadline_s=120.0, timeout=10.0, seed=3)


def assert_whole(outputs: list[np.ndarray], want: np.ndarray, parts: list[np.ndarray]) -> None:
    assert [len(o) for o in outputs] == [len(p) for p in parts]
    np.testing.assert_allclose(np.concatenate(outputs), want, atol=TOL, rtol=0)


def test_steps_through_a_lossy_proxy(server: ServerProcess, proxy: FaultProxy) -> None:
    parts = chunks(1)
    with lossy_client(proxy.url) as client:
        session = client.create_session(MODEL)
        outputs = [session.step(part) for part in parts]
        assert session.current_step == STEPS
    assert proxy.counts["dropped"] > 5, proxy.counts
    assert proxy.counts["lost"] > 5, proxy.counts
    assert httpx.get(f"{server.url}/v1/sessions/{session.id}").json()["step"] == STEPS
    assert_whole(outputs, expected(server.url, parts), parts)


def test_stream_through_a_lossy_proxy(server: ServerProcess, proxy: FaultProxy) -> None:
    parts = chunks(2)
    proxy.cut = 0.2  # per chunk read from either side; a message's exchange is 2 chunks
    with lossy_client(proxy.url) as client:
        session = client.create_session(MODEL)
        outputs = list(session.stream(iter(parts), max_steps=8, window=8))
    assert proxy.counts["cut request"] > 3, proxy.counts
    assert proxy.counts["cut answer"] > 3, proxy.counts
    assert proxy.max_lost_at_cut >= 2  # several messages in flight lost their answers at once
    assert httpx.get(f"{server.url}/v1/sessions/{session.id}").json()["step"] == STEPS
    assert_whole(outputs, expected(server.url, parts), parts)


@pytest.mark.parametrize(("window", "depth", "most"), [(8, "8", 8), (1, "8", 1), (8, "2", 2)])
def test_stream_keeps_a_window_of_messages_in_flight(
    start_server: StartServer, window: int, depth: str, most: int
) -> None:
    """A counting proxy that loses nothing: several messages of one session are on the wire
    before the first answer comes back, never more than the window or the server's depth."""
    server = start_server(SEQSERVE_SESSIONS__REPLAY_DEPTH=depth)
    proxy = FaultProxy(server.port, seed=1, drop=0, lose=0, cut=0).start()
    parts = chunks(6)
    try:
        with Client(proxy.url) as client:
            session = client.create_session(MODEL)
            outputs = list(session.stream(iter(parts), max_steps=8, window=window))
    finally:
        proxy.stop()
    assert_whole(outputs, expected(server.url, parts), parts)
    assert proxy.max_in_flight == most if most == 1 else 2 <= proxy.max_in_flight <= most


def v2_step(client: httpx.Client, url: str, seq: int, part: np.ndarray, step: int) -> Any:
    """One V2 sequence request with `sequence_step`, resent as it is until it gets an answer."""
    params: dict[str, Any] = {"sequence_id": seq, "sequence_step": step}
    if step == 0:
        params["sequence_start"] = True
    body = {
        "parameters": params,
        "inputs": [
            {"name": "x", "datatype": "FP64", "shape": [1, *part.shape], "data": part.ravel()}
        ],
    }
    for _ in range(60):
        try:
            answer = client.post(url, content=orjson.dumps(body, option=NUMPY))
        except httpx.TransportError:
            continue
        assert answer.status_code == 200, answer.text
        return answer.json()
    raise AssertionError("no answer in 60 tries")


def test_v2_sequence_step_through_a_lossy_proxy(server: ServerProcess, proxy: FaultProxy) -> None:
    parts = chunks(3)
    url = f"{proxy.url}/v2/models/{MODEL}/infer"
    outputs, step, replayed = [], 0, 0
    with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=10.0) as client:
        for part in parts:
            answer = v2_step(client, url, 9, part, step)
            assert answer["parameters"]["sequence_step"] == step + len(part)
            replayed += bool(answer["parameters"].get("sequence_replayed"))
            step = answer["parameters"]["sequence_step"]
            outputs.append(np.asarray(answer["outputs"][0]["data"]).reshape(len(part), -1))
    assert step == STEPS
    assert replayed > 5, (replayed, proxy.counts)
    assert_whole(outputs, expected(server.url, parts), parts)
