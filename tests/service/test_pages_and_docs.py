"""The demo page, the offline docs and the OpenAPI document's descriptions of answers."""

from __future__ import annotations

import base64
import json

import pytest
from fastapi.testclient import TestClient
from seqserve.service.app import create_app
from seqserve.service.settings import Settings
from starlette.websockets import WebSocketDisconnect

from tests.service.conftest import MakeClient

KEY = "k/+=?~ key"


def _protocols(key: str) -> list[str]:
    token = base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")
    return ["seqserve", f"seqserve.key.{token}"]


def test_pages_and_their_assets_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for asset in ("/static/demo.js", "/static/demo.css"):
        assert asset in page.text
        assert client.get(asset).status_code == 200
    series = client.get("/static/co2.json").json()
    assert len(series["values"]) == 2284
    assert series["start"] == "1958-03-29"
    for path, asset in (
        ("/docs", "/static/vendor/swagger-ui/swagger-ui-bundle.js"),
        ("/redoc", "/static/vendor/redoc/redoc.standalone.js"),
    ):
        html = client.get(path).text
        assert asset in html
        assert "cdn." not in html
        assert "fonts.googleapis" not in html
        assert client.get(asset).status_code == 200


def test_document_describes_every_answer() -> None:
    doc = create_app(Settings()).openapi()
    assert doc["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert {"step", "create_session", "predict", "forecast_stream", "infer"} <= set(ids)
    assert not {"/", "/docs", "/redoc"} & set(doc["paths"])
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            where = f"{method.upper()} {path}"
            assert "500" in op["responses"], where
            for status, response in op["responses"].items():
                if status.startswith("2"):
                    for content in response.get("content", {}).values():
                        if "schema" in content:
                            assert content["schema"], f"{where} {status} has an empty schema"
                else:
                    (media,) = response["content"]
                    v2 = path.startswith("/v2")
                    assert media == ("application/json" if v2 else "application/problem+json")
    session_routes = doc["paths"]["/v1/sessions/{session_id}/steps"]["post"]["responses"]
    assert {"404", "409", "410", "413", "415", "422", "429", "503"} <= set(session_routes)
    assert "WebSocket" in doc["info"]["description"]
    assert "event: forecast" in doc["info"]["description"]


def test_websocket_takes_the_key_as_a_subprotocol(make_client: MakeClient) -> None:
    client = make_client(security={"api_keys": [KEY]})
    created = client.post("/v1/sessions", json={"model": "diffed"}, headers={"X-API-Key": KEY})
    sid = created.json()["id"]
    url = f"/v1/sessions/{sid}/stream"
    with client.websocket_connect(url, subprotocols=_protocols(KEY)) as ws:
        assert ws.accepted_subprotocol == "seqserve"
        ws.send_text(json.dumps({"inputs": [[1.0]], "step": 0}))
        assert ws.receive_json()["step"] == 1
    with client.websocket_connect(url, subprotocols=_protocols("wrong")) as ws:
        assert ws.receive_json()["error"]["status"] == 401
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4401
    with client.websocket_connect(url, subprotocols=["seqserve", "seqserve.key.%%"]) as ws:
        assert ws.receive_json()["error"]["status"] == 400
