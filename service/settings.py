"""Server configuration: environment variables with the `SEQSERVE_` prefix.

Nested groups use a double underscore, e.g. `SEQSERVE_LIMITS__MAX_SESSIONS=1000`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_REPOSITORY = Path(__file__).parent / "model_repository"


class SessionSettings(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    idle_ttl_s: float = Field(900.0, gt=0)
    """Default idle TTL: a session not stepped for this long expires (410)."""
    ttl_s: float = Field(86400.0, gt=0)
    """Default absolute TTL: a session expires this long after creation, however busy."""
    max_idle_ttl_s: float = Field(7 * 86400.0, gt=0)
    """Largest idle TTL a client may ask for."""
    max_ttl_s: float = Field(30 * 86400.0, gt=0)
    """Largest absolute TTL a client may ask for."""
    sweep_interval_s: float = Field(5.0, gt=0)
    """How often expired sessions are swept out of memory."""
    tombstone_ttl_s: float = Field(3600.0, ge=0)
    """How long an expired or evicted session id keeps answering 410 instead of 404."""
    evict_idle_s: float = Field(0.0, ge=0)
    """At a cap, evict the least recently used session idle this long (0: never evict)."""
    replay_depth: int = Field(8, ge=1, le=64)
    """Stored answers kept per session: a retry of any of its last N applied step requests
    (same start index and inputs) gets its stored answer. The client's `Session.stream` keeps
    up to N messages in flight (it reads N from the WebSocket's `seqserve-replay-depth`
    header); 1 keeps only the last answer."""


class LimitSettings(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    max_sessions: int = Field(100_000, ge=1)
    """Cap on live sessions; creating more answers 429 with Retry-After."""
    max_state_bytes: int = Field(1 << 30, ge=1)
    """Cap on the bytes of recurrent state held for all sessions together."""
    max_body_bytes: int = Field(4 << 20, ge=1024)
    """Largest request body accepted (413 beyond it)."""
    max_steps_per_request: int = Field(4096, ge=1)
    """Most timesteps one session step request may carry."""
    max_batch: int = Field(256, ge=1)
    """Most sequences in one stateless predict request."""
    max_predict_steps: int = Field(100_000, ge=1)
    """Most timesteps (batch x time) in one stateless predict request."""
    max_horizon: int = Field(10_000, ge=1)
    """Largest forecast horizon."""
    retry_after_s: int = Field(5, ge=1)
    """Retry-After value sent with 429 and 503 answers."""
    max_output_values: int = Field(1_000_000, ge=1)
    """Most output values one answer may hold: batch x horizon x outputs for a forecast,
    batch x (T + horizon) x outputs for a predict (422 beyond it)."""
    max_heavy_per_client: int = Field(4, ge=1)
    """Forecasts, forecast streams and stateless predicts one API key (or, with keys off, one
    client address) may run at once; beyond it 429 with Retry-After."""
    body_timeout_s: float = Field(30.0, gt=0)
    """A request body that sends nothing for this long answers 408 and its connection closes."""
    head_timeout_s: float = Field(10.0, gt=0)
    """A request line and headers not complete this long after they begin (or after the
    connection opens) answer 408 and the connection closes."""
    max_head_bytes: int = Field(64 << 10, ge=4096)
    """Largest request line plus headers (431 and the connection closes beyond it)."""
    max_connections: int = Field(10_000, ge=1)
    """Open connections and in-flight requests (each) beyond which requests answer 503 and
    their connection closes (uvicorn's limit_concurrency)."""
    keep_alive_s: float = Field(5.0, gt=0)
    """An idle keep-alive HTTP connection closes after this long."""
    ws_idle_timeout_s: float = Field(300.0, gt=0)
    """A WebSocket that sends no message for this long is closed (code 1001)."""
    ws_ping_interval_s: float = Field(20.0, gt=0)
    """WebSocket ping interval; a peer that does not answer within the same time is closed."""


class BatchSettings(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    max_batch_size: int = Field(256, ge=1)
    """Most session steps coalesced into one ONNX Runtime call."""
    max_wait_us: int = Field(300, ge=0, le=1_000_000)
    """How long a batch waits for more steps after its first (microseconds); 0 turns batching
    off."""
    max_queue: int = Field(8192, ge=1)
    """Most steps waiting per model version; beyond it steps answer 429."""
    adaptive: bool = True
    """Close a batch before max_wait_us once the event loop has no further step to add;
    false always waits the full window (or until the batch is full)."""


class SecuritySettings(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    api_keys: list[SecretStr] = Field(default_factory=list)
    """API keys accepted in `X-API-Key` (a JSON list in the environment). Empty: no auth."""
    api_keys_file: Path | None = None
    """File with one API key a line (a mounted secret); added to `api_keys`."""
    admin_api_keys: list[SecretStr] = Field(default_factory=list)
    """Keys (a JSON list) that may load and unload models (`/v2/repository/...`,
    `/v1/models/{model}/load|unload`). With any key configured, only these may: a user key gets
    403. Empty with no user keys either: the repository endpoints are open."""
    cors_origins: list[str] = Field(default_factory=list)
    """Origins allowed by CORS. Empty (the default) turns CORS off."""


class OrtSettings(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    providers: list[str] = Field(default_factory=lambda: ["CPUExecutionProvider"], min_length=1)
    """ONNX Runtime execution providers in order of preference, e.g.
    `["CUDAExecutionProvider", "CPUExecutionProvider"]` (needs `seqserve[gpu]`). One this
    build lacks is skipped with a warning; the CPU provider is always the last fallback."""
    provider_options: dict[str, dict[str, str]] = Field(default_factory=dict)
    """Options per provider name, e.g. `{"CUDAExecutionProvider": {"device_id": "0"}}`."""
    graph_optimization_level: Literal["disabled", "basic", "extended", "all"] = "all"
    """ONNX Runtime graph optimizations applied when a model loads."""
    inter_op_threads: int = Field(1, ge=1)
    """Threads running independent graph nodes in parallel (`ort_threads` is intra-op)."""
    cpu_mem_arena: bool = True
    """Keep ONNX Runtime's CPU memory arena (faster; false returns memory between calls)."""


class TracingSettings(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    enabled: bool = False
    """OpenTelemetry tracing (needs `seqserve[otel]`): W3C `traceparent` in and out, spans for
    requests, batches, ONNX Runtime runs and store commits. Off costs nothing."""
    exporter: Literal["otlp", "console", "global"] = "otlp"
    """Where spans go: `otlp` (the standard `OTEL_EXPORTER_OTLP_*` variables say where),
    `console` (stderr), or `global` (the process's own tracer provider, e.g. one set by
    `opentelemetry-instrument`)."""
    service_name: str = "seqserve"
    """The `service.name` resource attribute of the spans."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SEQSERVE_",
        env_nested_delimiter="__",
        extra="forbid",
        use_attribute_docstrings=True,
    )

    model_repository: Path = DEFAULT_REPOSITORY
    """Model repository: `<repo>/<model>/<version>/{model.onnx,model.json}`."""
    model_control_mode: Literal["explicit", "none", "poll"] = "explicit"
    """As Triton's `--model-control-mode`: `explicit` loads/unloads only through the repository
    API, `none` turns that API off, `poll` also loads new versions from the folder by itself.
    Every mode loads the whole repository at start."""
    model_poll_interval_s: float = Field(10.0, gt=0)
    """model_control_mode=poll: how often the repository folder is checked for new versions."""
    model_default_versions: dict[str, str] = Field(default_factory=dict)
    """Pinned version per model for new sessions and calls without a version (a JSON object,
    e.g. `{"co2": "1"}`); a model not named here (or whose pin is not READY) gets its newest
    READY version."""
    host: str = "127.0.0.1"
    """Interface `seqserve serve` binds to."""
    port: int = Field(8000, ge=0, le=65535)
    """TCP port `seqserve serve` listens on (0 picks a free one)."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Log level."""
    log_json: bool = True
    """One JSON object per log line (production); false for plain text."""
    ort_threads: int = Field(1, ge=1)
    """Intra-op threads per ONNX Runtime session."""
    ort_pool_size: int = Field(2, ge=1)
    """Threads running session steps' ONNX Runtime calls (never the event loop)."""
    ort_heavy_pool_size: int = Field(2, ge=1)
    """Threads running forecasts and stateless predicts: apart from the step threads, so that
    heavy work never delays a step."""
    sessions: SessionSettings = SessionSettings()
    """Session lifetimes."""
    limits: LimitSettings = LimitSettings()
    """Admission caps and request limits."""
    batching: BatchSettings = BatchSettings()
    """Cross-session step batching."""
    security: SecuritySettings = SecuritySettings()
    """API keys and CORS."""
    ort: OrtSettings = OrtSettings()
    """ONNX Runtime providers and session options."""
    tracing: TracingSettings = TracingSettings()
    """OpenTelemetry tracing."""
    state_store: Literal["memory", "redis"] = "memory"
    """Where sessions live: `memory` (this process only) or `redis` (shared by all replicas)."""
    redis_url: SecretStr | None = None
    """Redis URL for state_store=redis, e.g. `redis://redis:6379/0` (`rediss://` for TLS)."""
    redis_prefix: str = Field("seqserve", pattern=r"^[A-Za-z0-9_.{}-]{1,64}$")
    """Prefix of every Redis key; replicas that share sessions must use the same one."""
    redis_cluster: Literal["auto", "on", "off"] = "auto"
    """Redis Cluster mode: `auto` asks the server at the URL (any node of a cluster will do),
    `on` / `off` say so without asking."""
    redis_shards: int = Field(0, ge=0, le=1024)
    """Shards the sessions and the caps are split into, each one hash slot (0: 1 on a single
    Redis, 32 on a cluster; on a cluster use at least 4 per master). Replicas sharing
    sessions must use the same value."""
    redis_wait_replicas: int = Field(0, ge=0, le=16)
    """Redis replicas that must hold a session's create and commits before they are answered
    (WAIT); beyond `redis_wait_timeout_ms` the answer is a 503 that the client retries with
    its step index. 1 with replicas (a cluster): no acknowledged step is lost when a
    master fails over. 0 answers once the master has it."""
    redis_wait_timeout_ms: int = Field(500, ge=1, le=60_000)
    """How long a commit waits for `redis_wait_replicas` replicas."""
    snapshot_path: Path | None = None
    """Memory store only: write every session here on shutdown, restore them at start."""
    workers: int = Field(1, ge=1, le=256)
    """Server processes sharing one listening socket and one session space (any worker steps
    any session). Above 1 the sessions live in Redis: the configured one with
    state_store=redis, else a private redis-server on a unix socket that the server starts and
    stops (docs/scaling.md)."""
    drain_delay_s: float = Field(0.0, ge=0)
    """After SIGTERM keep serving this long (readiness and new sessions answer 503) first."""
    shutdown_timeout_s: float = Field(10.0, gt=0)
    """After SIGTERM (and the drain delay), how long in-flight requests get to finish."""
    grpc_port: int | None = Field(None, ge=1, le=65535)
    """Port of the KServe V2 / Triton gRPC service (on `host`, needs the `grpc` extra); unset:
    gRPC off. The Docker image sets 8001, as Triton."""
    grpc_max_message_bytes: int = Field(16 << 20, ge=1024, le=2**31 - 1)
    """Largest gRPC message received or sent (RESOURCE_EXHAUSTED beyond it)."""
    grpc_keepalive_s: float = Field(30.0, gt=0)
    """gRPC keepalive: ping a connection idle this long, close it when the ping goes unanswered
    for as long again."""
    grpc_tls_cert: Path | None = None
    """PEM certificate chain for gRPC over TLS (with `grpc_tls_key`); unset: plaintext."""
    grpc_tls_key: Path | None = None
    """PEM private key for gRPC over TLS (with `grpc_tls_cert`)."""

    @field_validator("model_repository")
    @classmethod
    def _repository_exists(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(
                f"model repository {str(value)!r} is not a directory; set "
                "SEQSERVE_MODEL_REPOSITORY to a folder laid out as <model>/<version>/model.onnx"
            )
        return value

    @field_validator("model_default_versions")
    @classmethod
    def _versions_are_numbers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, version in value.items():
            if not (version.isascii() and version.isdigit()):
                raise ValueError(
                    f"SEQSERVE_MODEL_DEFAULT_VERSIONS: {name!r} is pinned to {version!r}; "
                    'a version is a folder number such as "1"'
                )
        return value

    @model_validator(mode="after")
    def _ttls_within_caps(self) -> Settings:
        s = self.sessions
        if s.idle_ttl_s > s.max_idle_ttl_s or s.ttl_s > s.max_ttl_s:
            raise ValueError(
                "default TTLs exceed their caps: raise SEQSERVE_SESSIONS__MAX_IDLE_TTL_S / "
                "SEQSERVE_SESSIONS__MAX_TTL_S or lower the defaults"
            )
        self._check_state_store()
        self._check_workers()
        self._check_grpc_tls()
        if self.security.api_keys_file is not None and not self.security.api_keys_file.is_file():
            raise ValueError(
                f"SEQSERVE_SECURITY__API_KEYS_FILE={self.security.api_keys_file} is not a file"
            )
        return self

    def _check_state_store(self) -> None:
        url = self.redis_url.get_secret_value() if self.redis_url else ""
        if self.state_store == "redis" and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                "state_store=redis needs SEQSERVE_REDIS_URL, e.g. redis://localhost:6379/0"
            )
        if self.state_store == "redis" and self.snapshot_path is not None:
            raise ValueError(
                "SEQSERVE_SNAPSHOT_PATH is for the memory store: with Redis the sessions already "
                "outlive the process; unset one of them"
            )

    def _check_workers(self) -> None:
        if self.workers == 1:
            return
        if self.snapshot_path is not None:
            raise ValueError(
                "SEQSERVE_SNAPSHOT_PATH needs SEQSERVE_WORKERS=1: with several workers the "
                "sessions live in Redis, not in a snapshot file; for sessions that outlive a "
                "restart use state_store=redis with a persistent Redis"
            )
        if self.grpc_port is not None:
            raise ValueError(
                "SEQSERVE_GRPC_PORT is served by one process only: use SEQSERVE_WORKERS=1 for "
                "gRPC, or run replicas (docs/scaling.md)"
            )
        if "model_control_mode" in self.model_fields_set and self.model_control_mode == "explicit":
            raise ValueError(
                "SEQSERVE_MODEL_CONTROL_MODE=explicit with several workers would load a model on "
                "whichever worker answers the call; use poll or none with SEQSERVE_WORKERS > 1"
            )

    def _check_grpc_tls(self) -> None:
        pair = (self.grpc_tls_cert, self.grpc_tls_key)
        if (pair[0] is None) != (pair[1] is None):
            raise ValueError(
                "gRPC TLS needs both SEQSERVE_GRPC_TLS_CERT and SEQSERVE_GRPC_TLS_KEY, or neither"
            )
        for path in pair:
            if path is not None and not path.is_file():
                raise ValueError(f"gRPC TLS file {path} is not a file")

    def api_keys(self) -> list[str]:
        """All configured keys: inline ones plus those in the secret file."""
        keys = [k.get_secret_value() for k in self.security.api_keys]
        if self.security.api_keys_file is not None:
            lines = self.security.api_keys_file.read_text().splitlines()
            keys += [line.strip() for line in lines if line.strip()]
        return keys

    def admin_api_keys(self) -> list[str]:
        """Keys that may change the model repository while the server runs."""
        return [k.get_secret_value() for k in self.security.admin_api_keys]
