"""API keys: required when configured, compared in constant time, sessions bound to their key."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from seqserve.service.api.context import app_context

from tests.service.conftest import MakeClient

A = {"X-API-Key": "key-a"}
B = {"X-API-Key": "key-b"}


def _keyed(make_client: MakeClient, tmp_path: Path) -> TestClient:
    secret = tmp_path / "keys"
    secret.write_text("key-b\n\n")
    return make_client(security={"api_keys": ["key-a"], "api_keys_file": secret})


def test_missing_or_wrong_key_is_401(make_client: MakeClient, tmp_path: Path) -> None:
    client = _keyed(make_client, tmp_path)
    for headers in ({}, {"X-API-Key": "nope"}):
        r = client.get("/v1/models", headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "ApiKey"
        assert r.json()["type"].endswith("/unauthorized")
    assert client.get("/v1/models", headers=A).status_code == 200
    assert client.get("/healthz").status_code == 200  # probes need no key
    assert client.get("/readyz").status_code == 200


def test_sessions_are_visible_only_to_their_key(make_client: MakeClient, tmp_path: Path) -> None:
    client = _keyed(make_client, tmp_path)
    sid = client.post("/v1/sessions", json={"model": "diffed"}, headers=A).json()["id"]
    mine = client.post("/v1/sessions", json={"model": "diffed"}, headers=B).json()["id"]
    # stepped once, so that every route (forecasts too) would answer its owner with a 2xx
    assert client.post(f"/v1/sessions/{sid}/steps", json={"inputs": [[1.0]]}, headers=A).is_success
    for method, path, body in (
        ("GET", "", None),
        ("POST", "/steps", {"inputs": [[1.0]]}),
        ("POST", "/forecast", {"horizon": 2}),
        ("GET", "/forecast/stream?horizon=2", None),
        ("POST", "/reset", None),
        ("POST", "/fork", None),
        ("GET", "/state", None),
        ("DELETE", "", None),
    ):
        r = client.request(method, f"/v1/sessions/{sid}{path}", json=body, headers=B)
        assert r.status_code == 404, (method, path, r.status_code)
    assert [s["id"] for s in client.get("/v1/sessions", headers=B).json()["sessions"]] == [mine]
    assert [s["id"] for s in client.get("/v1/sessions", headers=A).json()["sessions"]] == [sid]
    assert client.get(f"/v1/sessions/{sid}", headers=A).json()["step"] == 1


def test_owner_is_a_digest_not_the_key(make_client: MakeClient, tmp_path: Path) -> None:
    client = _keyed(make_client, tmp_path)
    sid = client.post("/v1/sessions", json={"model": "diffed"}, headers=A).json()["id"]
    engine = app_context(client.app).engine  # type: ignore[arg-type]
    owner = client.portal.call(engine.store.get, sid).owner  # type: ignore[union-attr]
    assert owner
    assert "key-a" not in owner
    assert len(owner) == 32


def test_cors_is_off_by_default_and_covers_steps_when_on(make_client: MakeClient) -> None:
    origin = {"Origin": "https://app.example"}
    plain = make_client()
    sid = plain.post("/v1/sessions", json={"model": "diffed"}).json()["id"]
    r = plain.post(f"/v1/sessions/{sid}/steps", json={"inputs": [[1.0]]}, headers=origin)
    assert "access-control-allow-origin" not in r.headers
    cors = make_client(security={"cors_origins": ["https://app.example"]})
    sid = cors.post("/v1/sessions", json={"model": "diffed"}).json()["id"]
    r = cors.post(f"/v1/sessions/{sid}/steps", json={"inputs": [[1.0]]}, headers=origin)
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://app.example"
