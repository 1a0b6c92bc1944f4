"""The front door's rules, the same whichever lane a request takes: the JSON Content-Type rule
on the step fast lane, and errors rendered in the protocol of their path."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.service.conftest import new_session

BODY = b'{"inputs": [[1.0]]}'


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        None,
    ],
)
def test_a_step_not_labelled_json_is_415_and_changes_nothing(
    client: TestClient, content_type: str | None
) -> None:
    sid = new_session(client)["id"]
    headers = {} if content_type is None else {"content-type": content_type}
    r = client.post(f"/v1/sessions/{sid}/steps", content=BODY, headers=headers)
    assert r.status_code == 415, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/unsupported-media-type")
    assert "Content-Type: application/json" in r.json()["detail"]
    assert client.get(f"/v1/sessions/{sid}").json()["step"] == 0


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
def test_a_step_labelled_json_is_applied(client: TestClient, content_type: str) -> None:
    sid = new_session(client)["id"]
    r = client.post(
        f"/v1/sessions/{sid}/steps", content=BODY, headers={"content-type": content_type}
    )
    assert r.status_code == 200, r.text
    assert r.json()["step"] == 1


def test_errors_on_v2_paths_are_v2_errors_whatever_raised_them(client: TestClient) -> None:
    # 405 comes from the router, not from a V2 route: it still speaks V2
    r = client.options("/v2/health/ready")
    assert r.status_code == 405
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"error": "Method Not Allowed"}
    r = client.options("/v1/models")
    assert r.status_code == 405
    assert r.headers["content-type"] == "application/problem+json"
