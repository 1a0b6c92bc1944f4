"""Schema-driven fuzzing of the OpenAPI spec against a real server: never a 5xx, and every
answer is one the document describes (status code, content type and body schema)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from seqserve.service.app import create_app
from seqserve.service.settings import Settings

from scripts.launch import ServerProcess

# the spec needs no running app (no models are loaded to build it)
SCHEMA = schemathesis.openapi.from_dict(create_app(Settings()).openapi())
OPERATIONS = {op.label: op for op in (r.ok() for r in SCHEMA.get_all_operations())}
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def live(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess.seqserve(
        repo, tmp_path_factory.mktemp("fuzz"), SEQSERVE_LIMITS__MAX_SESSIONS="2000"
    )
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("label", sorted(OPERATIONS))
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_no_server_errors(live: ServerProcess, label: str, data: st.DataObject) -> None:
    case = data.draw(OPERATIONS[label].as_strategy())
    if "session_id" in (case.path_parameters or {}) and data.draw(st.booleans()):
        # aim at a live session, so that bodies reach the engine's own validation
        model = data.draw(st.sampled_from(["diffed", "multi", "gru"]))
        created = httpx.post(f"{live.url}/v1/sessions", json={"model": model}).json()
        case.path_parameters["session_id"] = created["id"]
        if data.draw(st.booleans()):
            width = {"diffed": 1, "multi": 3, "gru": 2}[model]
            httpx.post(
                f"{live.url}/v1/sessions/{created['id']}/steps", json={"inputs": [[1.0] * width]}
            )
    response = case.call(base_url=live.url, timeout=30)
    assert response.status_code < 500, (label, response.status_code, response.text[:500])
    case.validate_response(response, checks=CONFORMANCE)
