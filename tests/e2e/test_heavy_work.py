"""One heavy request must not stall the server: gzip bombs, long forecasts, huge answers."""

from __future__ import annotations

import gzip
import json
import re
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import pytest

from scripts.launch import ServerProcess
from tests.e2e.conftest import StartServer

LONG_HORIZON = 20_000  # seconds of ONNX Runtime work for one forecast


def _session(server: ServerProcess) -> str:
    sid = str(httpx.post(f"{server.url}/v1/sessions", json={"model": "diffed"}).json()["id"])
    r = httpx.post(f"{server.url}/v1/sessions/{sid}/steps", json={"inputs": [[315.0]]})
    assert r.status_code == 200, r.text[:300]
    return sid


def _ort_calls(server: ServerProcess) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    counts = re.findall(r"^seqserve_ort_run_seconds_count\{[^}]*\} (\S+)$", text, re.M)
    return sum(float(c) for c in counts)


def _start_long_forecast(server: ServerProcess, pool: ThreadPoolExecutor) -> Future[httpx.Response]:
    """A forecast of LONG_HORIZON steps, returned once the server is computing it."""
    sid = _session(server)
    before = _ort_calls(server)
    url = f"{server.url}/v1/sessions/{sid}/forecast"
    forecast = pool.submit(httpx.post, url, json={"horizon": LONG_HORIZON}, timeout=300)
    for _ in range(2000):  # poll the server's own count of ONNX Runtime calls
        if _ort_calls(server) - before >= 100 or forecast.done():
            break
    assert not forecast.done(), forecast.result().text[:300]
    return forecast


@pytest.fixture
def busy_server(start_server: StartServer) -> ServerProcess:
    # one step thread: before heavy work had its own pool, one forecast filled it
    return start_server(
        SEQSERVE_ORT_POOL_SIZE="1",
        SEQSERVE_LIMITS__MAX_HORIZON=str(LONG_HORIZON),
        SEQSERVE_LIMITS__MAX_HEAVY_PER_CLIENT="1",
    )


def test_a_step_answers_while_a_long_forecast_runs(busy_server: ServerProcess) -> None:
    with ThreadPoolExecutor(1) as pool:
        forecast = _start_long_forecast(busy_server, pool)
        sid = _session(busy_server)
        step = httpx.post(
            f"{busy_server.url}/v1/sessions/{sid}/steps",
            json={"inputs": [[316.0]], "step": 1},
            timeout=120,
        )
        assert step.status_code == 200, step.text
        assert not forecast.done(), "the step waited for the forecast"
        assert forecast.result().status_code == 200
    assert len(forecast.result().json()["forecast"]) == LONG_HORIZON


def test_heavy_calls_beyond_the_per_client_cap_get_429(busy_server: ServerProcess) -> None:
    with ThreadPoolExecutor(1) as pool:
        forecast = _start_long_forecast(busy_server, pool)
        sid = _session(busy_server)
        second = httpx.post(
            f"{busy_server.url}/v1/sessions/{sid}/forecast", json={"horizon": 10}, timeout=120
        )
        predict = httpx.post(
            f"{busy_server.url}/v1/models/diffed/predict",
            json={"inputs": [[[315.0]]]},
            timeout=120,
        )
        assert not forecast.done()
        assert forecast.result().status_code == 200
    for refused in (second, predict):
        assert refused.status_code == 429, refused.text[:300]
        assert refused.headers["retry-after"] == "5"
        assert refused.json()["max_heavy_per_client"] == 1
    # the slot is free again once the forecast is done
    again = httpx.post(f"{busy_server.url}/v1/sessions/{sid}/forecast", json={"horizon": 10})
    assert again.status_code == 200, again.text


def test_answers_beyond_the_output_cap_are_refused_naming_the_limit(
    start_server: StartServer,
) -> None:
    server = start_server(SEQSERVE_LIMITS__MAX_OUTPUT_VALUES="1000")
    sequences = [[[315.0 + t] for t in range(50)] for _ in range(10)]  # 500 outputs
    ok = httpx.post(f"{server.url}/v1/models/diffed/predict", json={"inputs": sequences})
    assert ok.status_code == 200, ok.text[:300]
    calls = [
        ("/v1/models/diffed/predict", {"inputs": sequences, "horizon": 100}),  # 500 + 1000
        ("/v1/models/diffed/predict", {"inputs": sequences * 3}),  # 1500
        (f"/v1/sessions/{_session(server)}/forecast", {"horizon": 1001}),
    ]
    for path, body in calls:
        r = httpx.post(server.url + path, json=body)
        assert r.status_code == 422, r.text[:300]
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["max_output_values"] == 1000
        assert "1000" in r.json()["detail"]
    v2 = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [30, 50, 1], "data": [315.0] * 1500}]
    }
    r = httpx.post(f"{server.url}/v2/models/diffed/infer", json=v2)
    assert r.status_code == 400, r.text[:300]
    assert "1000" in r.json()["error"]


def test_a_body_of_many_gzip_members_is_refused_and_health_answers(
    start_server: StartServer,
) -> None:
    server = start_server()
    bomb = gzip.compress(b"") * 200_000  # 4 MB of empty members
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    with ThreadPoolExecutor(1) as pool:
        infer = pool.submit(
            httpx.post,
            f"{server.url}/v2/models/diffed/infer",
            content=bomb,
            headers=headers,
            timeout=20,
        )
        assert httpx.get(f"{server.url}/healthz", timeout=20).status_code == 200
        r = infer.result()
    assert r.status_code == 400, r.text[:300]
    assert "members" in r.json()["error"]
    # one member (what tritonclient sends) still works
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2, 1], "data": [1, 2]}]}
    one = gzip.compress(json.dumps(body).encode())
    r = httpx.post(f"{server.url}/v2/models/diffed/infer", content=one, headers=headers)
    assert r.status_code == 200, r.text[:300]
