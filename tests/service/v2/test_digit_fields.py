"""V2 integers in paths and headers: only ASCII digits of bounded length, else a 400 with
`{"error"}` (never the 500 that `int()` raising on '²' or on 5,000 digits would give)."""

from __future__ import annotations

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.service.v2.support import infer_body

pytestmark = pytest.mark.service

BAD_VERSIONS = ["²", "٣", "9" * 5000]
GOOD = infer_body([0.5] * 6, [1, 2, 3])


def _bad_request(response: object) -> None:
    assert response.status_code == 400, response.text  # type: ignore[attr-defined]
    assert "error" in response.json()  # type: ignore[attr-defined]


@pytest.mark.parametrize("version", BAD_VERSIONS)
@pytest.mark.parametrize("suffix", ["", "/ready", "/config", "/stats"])
def test_a_version_of_non_ascii_or_endless_digits_is_400(
    v2: TestClient, version: str, suffix: str
) -> None:
    _bad_request(v2.get(f"/v2/models/multi/versions/{version}{suffix}"))


@pytest.mark.parametrize("version", BAD_VERSIONS)
def test_infer_on_such_a_version_is_400(v2: TestClient, version: str) -> None:
    _bad_request(v2.post(f"/v2/models/multi/versions/{version}/infer", content=orjson.dumps(GOOD)))


# (a '²' header needs a real server: see tests/e2e/test_integer_bounds.py)
@pytest.mark.parametrize("length", [b"9" * 5000, b"0" * 30 + b"5"])
@pytest.mark.parametrize("path", ["/v2/models/multi/infer", "/v2/models/multi/versions/1/infer"])
def test_an_endless_or_non_ascii_header_length_is_400(
    v2: TestClient, length: bytes, path: str
) -> None:
    body = orjson.dumps(GOOD)
    response = v2.post(path, content=body, headers={"Inference-Header-Content-Length": length})
    _bad_request(response)
    assert "inference header size" in response.json()["error"]


def test_plain_digits_still_name_versions(v2: TestClient) -> None:
    assert v2.get("/v2/models/multi/versions/1/ready").status_code == 200
    assert v2.get("/v2/models/multi/versions/01/ready").status_code == 200
    body = orjson.dumps(GOOD)
    headers = {"Inference-Header-Content-Length": str(len(body))}
    assert v2.post("/v2/models/multi/infer", content=body, headers=headers).status_code == 200
