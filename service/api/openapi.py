"""The OpenAPI document, completed: a response model for every route, the error bodies each
route can answer with, the `X-API-Key` scheme, stable operation ids and the streaming formats."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel
from seqserve.service.api import replies as r

STREAMING = """
## Streaming

**WebSocket** `GET /v1/sessions/{id}/stream` (upgrade). Send one JSON text frame per step,
`{"inputs": [[f, ..], ..], "step"?: n, "id"?: any}`; each gets, in order,
`{"outputs": [[..], ..], "step": n, "replayed": bool, "id": any}`, or `{"error": problem, "id"}`
for a bad message (the connection stays open). Close codes: 1003 a binary frame, 1009 a frame
too big, 4401 bad API key, 4404 no such session, 4410 the session expired or was deleted,
1001 idle too long. Browsers, which cannot set headers on a WebSocket, may send the API key as
the subprotocol `seqserve.key.<base64url of the key>` next to `seqserve` (the server then
accepts `seqserve`).

**Server-Sent Events** `GET /v1/sessions/{id}/forecast/stream?horizon=N`: one
`event: forecast` per step ahead, `data: {"index": k, "forecast": [..]}` with `id: k`, then
`event: end`, `data: {"horizon": N, "step": n}`. The session's state is unchanged.
"""

# the success body of each route, by route name (the operation id)
SUCCESS: dict[str, type[BaseModel]] = {
    "create_session": r.SessionView,
    "list_sessions": r.SessionList,
    "get_session": r.SessionView,
    "step": r.StepResult,
    "forecast": r.ForecastResult,
    "reset": r.SessionView,
    "fork": r.SessionView,
    "export_state": r.StateDocument,
    "list_models": r.ModelList,
    "get_model": r.ModelInfo,
    "predict": r.PredictResult,
    "healthz": r.Health,
    "readyz": r.Ready,
    "server_metadata": r.V2ServerMetadata,
    "model_metadata": r.V2ModelMetadata,
    "model_metadata_version": r.V2ModelMetadata,
    "model_config": r.V2ModelConfig,
    "model_config_version": r.V2ModelConfig,
    "all_stats": r.V2Stats,
    "model_stats": r.V2Stats,
    "version_stats": r.V2Stats,
    "infer": r.V2InferResponse,
    "infer_version": r.V2InferResponse,
    "load_model": r.ModelVersions,
    "unload_model": r.ModelVersions,
}
# 200 with no body
EMPTY = {"live", "ready", "model_ready", "model_ready_version", "load", "unload"}
TITLES = {
    400: "Malformed request (e.g. two X-API-Key headers, JSON that does not parse)",
    401: "Missing or invalid API key (when keys are configured)",
    403: "Not allowed: the repository API needs an admin key (or is turned off)",
    404: "Unknown model, version or session (or another key's session)",
    408: "The request body did not arrive in time",
    409: "Step conflict: the session is at another step index, or busy",
    410: "The session expired or was deleted",
    413: "Body too large (also once decompressed), or too many timesteps",
    415: "The body is not JSON (send Content-Type: application/json)",
    422: "Invalid input: shapes, feature count, NaN/Inf, bounds",
    429: "Over a cap (sessions, state bytes, concurrent heavy work); see Retry-After",
    500: "The server failed; its logs say why (the body never does)",
    503: "Not ready: draining, no model loaded, state store unreachable or full",
}


def operation_id(route: APIRoute) -> str:
    """The route's name; a route registered for a model and for one of its versions gets
    `_version` on the second (the V2 routes share handlers that way)."""
    name = route.name
    if "{version}" in route.path_format and "version" not in name:
        name += "_version"
    return name


def _keyed(path: str) -> bool:
    return path.startswith("/v1/") or (path.startswith("/v2") and not path.startswith("/v2/health"))


def error_statuses(path: str, method: str, operation: dict[str, Any]) -> list[int]:
    """What an operation can answer besides success (checked against the live server by the
    schema fuzz test, with response conformance on)."""
    name = operation["operationId"]
    codes = {500}
    if _keyed(path):
        codes |= {400, 401}  # two X-API-Key headers; a missing or wrong key
    if method in {"post", "put", "patch"}:
        codes |= {400, 408, 413, 415, 422}  # the body: late, too big, not JSON, invalid
    if "{" in path:
        codes |= {404, 422}
    if any(p["in"] == "query" for p in operation.get("parameters", [])):
        codes.add(422)
    if "{session_id}" in path:
        codes |= {404, 409, 410}
    if name in {"create_session", "predict", "forecast", "forecast_stream", "fork", "step"}:
        codes |= {404, 429, 503}  # caps, heavy-work gates, a full or unreachable store
    if path.startswith("/v2/models/") and method == "post":
        codes |= {404, 429, 503}
    if name in {"readyz", "ready"}:
        codes.add(503)
    if "/repository/" in path or name in {"load_model", "unload_model"}:
        codes |= {403, 404, 422, 503}  # not an admin key or control mode none; a refused load
    if "{session_id}" in path or path.startswith("/v2/models/"):
        codes.add(503)  # the session's version is not loaded on this replica yet
    return sorted(codes)


def _error_response(status: int, v2: bool) -> dict[str, Any]:
    if v2:
        schema, media = {"$ref": "#/components/schemas/V2Error"}, "application/json"
    else:
        schema, media = {"$ref": "#/components/schemas/Problem"}, "application/problem+json"
    response: dict[str, Any] = {
        "description": TITLES[status],
        "content": {media: {"schema": schema}},
    }
    if status in (429, 503):
        response["headers"] = {
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
        }
    return response


def _success(operation: dict[str, Any], name: str, schemas: dict[str, Any]) -> None:
    if name in EMPTY:
        operation["responses"]["200"].pop("content", None)
    if name == "repository_index":
        index = _register(r.V2IndexEntry, schemas)
        content = operation["responses"]["200"]["content"]["application/json"]
        content["schema"] = {"type": "array", "items": index}
    if name in {"infer", "infer_version"}:  # the binary tensor data extension
        binary = {"schema": {"type": "string", "format": "binary"}}
        operation["responses"]["200"]["content"]["application/octet-stream"] = binary
    model = SUCCESS.get(name)
    if model is None:
        return
    ref = _register(model, schemas)
    for code, response in operation["responses"].items():
        if code.startswith("2") and "application/json" in response.get("content", {}):
            response["content"]["application/json"]["schema"] = ref


def _register(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, str]:
    """Put a model's schema (and those it uses) in the components; return a $ref to it."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schema.pop("$defs", {}))
    schemas[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def describe(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus what it cannot infer from handlers that return raw responses."""
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=(app.description or "") + STREAMING,
        routes=app.routes,
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for model in (r.Problem, r.V2Error):
        schemas[model.__name__] = model.model_json_schema()
    doc["components"]["securitySchemes"] = {
        "ApiKey": {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "Needed only when the server has API keys configured.",
        }
    }
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            _success(operation, operation["operationId"], schemas)
            statuses = error_statuses(path, method, operation)
            for status in statuses:
                operation["responses"][str(status)] = _error_response(
                    status, path.startswith("/v2")
                )
            operation["responses"] = dict(sorted(operation["responses"].items()))
            if 401 in statuses:
                operation["security"] = [{}, {"ApiKey": []}]  # {}: keys are optional
    metrics = doc["paths"]["/metrics"]["get"]["responses"]["200"]
    metrics["content"] = {"text/plain": {"schema": {"type": "string"}}}
    # FastAPI's own 422 body is never sent: every 422 is a problem (or a V2 error)
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return doc


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
