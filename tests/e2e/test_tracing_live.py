"""Tracing on a real uvicorn process: a response continues the caller's W3C trace, and the
spans reach the exporter by the time the server has stopped."""

from __future__ import annotations

import importlib.util

import httpx
import pytest

from tests.conftest import IN_CI
from tests.e2e.conftest import StartServer

if importlib.util.find_spec("opentelemetry.sdk") is None:
    if IN_CI:
        raise ImportError("tracing tests need seqserve[otel] (opentelemetry-sdk)")
    pytest.skip("needs seqserve[otel] (opentelemetry-sdk)", allow_module_level=True)


def test_a_live_response_carries_traceparent(start_server: StartServer) -> None:
    server = start_server(SEQSERVE_TRACING__ENABLED="true", SEQSERVE_TRACING__EXPORTER="console")
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    sent = f"00-{trace_id}-00f067aa0ba902b7-01"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        sid = client.post("/v1/sessions", json={"model": "diffed"}).json()["id"]
        response = client.post(
            f"/v1/sessions/{sid}/steps", json={"inputs": [[315.0]]}, headers={"traceparent": sent}
        )
    assert response.status_code == 200
    version, got_trace, span_id, flags = response.headers["traceparent"].split("-")
    assert (version, got_trace, flags) == ("00", trace_id, "01")
    assert span_id != "00f067aa0ba902b7"  # the server's own span, child of the caller's
    server.stop()  # SIGTERM: the app flushes its span processor on the way out
    exported = server.log_path.read_text()
    assert f'"trace_id": "0x{trace_id}"' in exported
    assert '"name": "step batch"' in exported
