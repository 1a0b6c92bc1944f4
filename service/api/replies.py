"""Response bodies of the v1 API, for the OpenAPI document only: handlers build plain dicts
(orjson is the fast path) and these models describe what they send."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Rows = list[list[float]]


def _example(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


class Problem(BaseModel):
    """RFC 9457 problem details (`application/problem+json`); more fields may help a fix
    (e.g. `expected_features`, `step`)."""

    model_config = _example(
        {
            "type": "https://seqserve.dev/problems/step-conflict",
            "title": "Step conflict",
            "status": 409,
            "detail": "the session is at step 12, not 10",
            "instance": "/v1/sessions/4cSVAspW0a/steps",
        }
    )
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None


class V2Error(BaseModel):
    """The V2 protocol's error body."""

    model_config = _example({"error": "unknown model 'nope'"})
    error: str


class SessionView(BaseModel):
    model_config = _example(
        {
            "id": "4cSVAspW0a-HxV8Q1r2cXw",
            "model": "co2",
            "version": "1",
            "step": 0,
            "created_at": "2026-01-01T00:00:00.000+00:00",
            "last_used_at": "2026-01-01T00:00:00.000+00:00",
            "expires_at": "2026-01-01T00:15:00.000+00:00",
            "idle_ttl_s": 900.0,
            "ttl_s": 86400.0,
        }
    )
    id: str
    model: str
    version: str
    step: int = Field(description="Timesteps applied so far: the next step's start index.")
    created_at: str
    last_used_at: str
    expires_at: str
    idle_ttl_s: float
    ttl_s: float


class SessionList(BaseModel):
    sessions: list[SessionView]
    truncated: bool = Field(description="More sessions exist than `limit` listed.")


class StepResult(BaseModel):
    model_config = _example({"outputs": [[316.02], [317.61]], "step": 2, "replayed": False})
    outputs: Rows = Field(description="[T][O]: one row of outputs per timestep sent.")
    step: int = Field(description="The session's step index after these timesteps.")
    replayed: bool = Field(description="A retry of the last applied request: its stored answer.")


class ForecastResult(BaseModel):
    model_config = _example({"forecast": [[318.1], [318.4], [318.9]], "step": 2})
    forecast: Rows = Field(description="[N][O]: N steps ahead of the current state.")
    step: int = Field(description="The step the forecast starts from (unchanged).")


class VersionState(BaseModel):
    version: str
    state: str = Field(description="READY, LOADING or UNAVAILABLE")
    reason: str | None = Field(None, description="Why a version is UNAVAILABLE")


class ModelSummary(BaseModel):
    name: str
    versions: list[str] = Field(description="READY versions")
    latest: str | None
    cell: str | None = None
    features: list[str] | None = None
    outputs: list[str] | None = None
    forecastable: bool | None = None
    states: list[VersionState] = Field(description="Every version in the repository folder")


class ModelVersions(BaseModel):
    model: str
    versions: list[VersionState]


class ModelList(BaseModel):
    models: list[ModelSummary]


class ModelInfo(BaseModel):
    """The manifest (all its fields) plus what the server knows of the model."""

    name: str
    version: str
    versions: list[str]
    latest: str
    forecastable: bool
    state_bytes: int = Field(description="Bytes of recurrent state one session holds.")


class PredictResult(BaseModel):
    model_config = _example({"model": "co2", "version": "1", "outputs": [[[316.02], [317.61]]]})
    model: str
    version: str
    outputs: list[Rows] = Field(description="[B][T][O] (T = 1 with `return_sequences: false`).")
    forecast: list[Rows] | None = Field(None, description="[B][horizon][O], with `horizon`.")


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    models: list[str]
    state_store: str


class StateDocument(BaseModel):
    """A portable state document: POST it as `state` to /v1/sessions to continue elsewhere."""


# --- the V2 (KServe / Triton) protocol's bodies ---


class V2Tensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class V2ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class V2ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[V2Tensor]
    outputs: list[V2Tensor]


class V2ModelConfig(BaseModel):
    """Triton's model configuration (more fields than listed: input, output, sequence_batching)."""

    name: str
    platform: str
    backend: str
    max_batch_size: int


class V2IndexEntry(BaseModel):
    name: str
    version: str
    state: str
    reason: str | None = None


class V2Stats(BaseModel):
    model_stats: list[dict[str, Any]]


class V2Output(V2Tensor):
    data: list[Any] | None = Field(None, description="Absent when sent as binary data.")
    parameters: dict[str, Any] | None = None


class V2InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[V2Output]
