"""The asyncio client: `AsyncClient` and `AsyncSession`, call for call the blocking ones."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from types import TracebackType
from typing import Any

import httpx

from seqserve.client import _wire
from seqserve.client._retry import Retry, should_retry
from seqserve.client.errors import NotFound, SessionGone, TransportError, error_from, retry_after

Array = _wire.Array


class AsyncClient:
    """A seqserve server (or several replicas sharing Redis: give a list of base URLs; a
    replica that does not answer is skipped). Every call retries transport errors, 429, 502,
    503 and 504 with jittered backoff, at most `retries` times within `deadline_s`."""

    def __init__(
        self,
        base_url: str | Sequence[str] = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout: float = 10.0,
        retries: int = 8,
        deadline_s: float = 30.0,
        keepalive: bool = True,
        seed: int | None = None,
    ) -> None:
        self.urls = _wire.base_urls(base_url)
        self.api_key = api_key
        self.timeout = timeout
        self.retries, self.deadline_s = retries, deadline_s
        self._rng = random.Random(seed)
        self._at = 0  # index of the replica in use
        headers = {"X-API-Key": api_key} if api_key else {}
        limits = httpx.Limits() if keepalive else httpx.Limits(max_keepalive_connections=0)
        self._http = httpx.AsyncClient(headers=headers, timeout=timeout, limits=limits)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    @property
    def base_url(self) -> str:
        return self.urls[self._at]

    def retry(self) -> Retry:
        return Retry(self.retries, self.deadline_s, rng=self._rng)

    def next_replica(self) -> None:
        self._at = (self._at + 1) % len(self.urls)

    async def request(
        self, method: str, path: str, body: Any = None, *, gone_ok: bool = False
    ) -> Any:
        """The decoded answer; resends the identical request on a transport error or a
        retryable status. `gone_ok`: a 404/410 after a lost answer means it was applied."""
        retry = self.retry()
        content = None if body is None else _wire.encode(body)
        lost = False
        while True:
            try:
                resp = await self._http.request(
                    method, self.base_url + path, content=content, headers=_wire.JSON_HEADERS
                )
            except httpx.TransportError as e:
                failure: Exception = TransportError(f"{method} {path}: {type(e).__name__} {e}")
                lost = True
                self.next_replica()
                wait = retry.delay()
            else:
                status = resp.status_code
                if status < 400:
                    return _wire.decode(resp.content)
                failure = error_from(status, _wire.decode(resp.content), resp.headers)
                if gone_ok and lost and isinstance(failure, NotFound | SessionGone):
                    return None
                if not should_retry(status):
                    raise failure
                if status != 429:
                    self.next_replica()
                wait = retry.delay(retry_after(resp.headers))
            if wait is None:
                raise failure
            await asyncio.sleep(wait)

    # -- models and stateless calls --------------------------------------------------------

    async def models(self) -> list[dict[str, Any]]:
        return list((await self.request("GET", "/v1/models"))["models"])

    async def predict(
        self,
        model: str,
        sequences: Any,
        horizon: int | None = None,
        version: str | None = None,
    ) -> dict[str, Any]:
        """Whole sequences `[B][T][F]` from zero state: `{"outputs": [B] arrays [T, O]}`, and
        `"forecast"` ([B] arrays [horizon, O]) when a horizon is given."""
        body = _wire.predict_body(version, sequences, horizon)
        answer = await self.request("POST", f"/v1/models/{model}/predict", body)
        return {
            k: [_wire.outputs(v) for v in vs] for k, vs in answer.items() if isinstance(vs, list)
        }

    # -- sessions ---------------------------------------------------------------------------

    async def create_session(
        self,
        model: str,
        version: str | None = None,
        idle_ttl_s: float | None = None,
        ttl_s: float | None = None,
    ) -> AsyncSession:
        body = _wire.create_body(model, version, idle_ttl_s, ttl_s)
        return AsyncSession(self, await self.request("POST", "/v1/sessions", body))

    async def import_session(
        self, state: dict[str, Any], idle_ttl_s: float | None = None
    ) -> AsyncSession:
        """A new session from a state document (`Session.export_state`)."""
        body = _wire.create_body(None, None, idle_ttl_s, None, state)
        return AsyncSession(self, await self.request("POST", "/v1/sessions", body))

    async def session(self, session_id: str) -> AsyncSession:
        """Attach to an existing session, at its current step."""
        return AsyncSession(self, await self.request("GET", _wire.session_path(session_id)))

    async def sessions(self) -> list[dict[str, Any]]:
        return list((await self.request("GET", "/v1/sessions"))["sessions"])


class AsyncSession:
    """One server session. `current_step` is the index its next step must start at: every
    request carries it, so a resend after a lost answer is replayed, never applied twice."""

    def __init__(self, client: AsyncClient, view: dict[str, Any]) -> None:
        self.client = client
        self.id: str = view["id"]
        self.model: str = view["model"]
        self.version: str = view["version"]
        self.current_step: int = int(view["step"])
        self.info = view

    def __repr__(self) -> str:
        return f"AsyncSession({self.id!r}, model={self.model!r}, step={self.current_step})"

    def _path(self, tail: str = "") -> str:
        return _wire.session_path(self.id, tail)

    async def step(self, inputs: Any) -> Array:
        """Outputs [T, O] for inputs [T, F]. Raises `StepConflict` (nothing applied) when the
        session moved on without this client."""
        body = {"inputs": _wire.steps(inputs), "step": self.current_step}
        answer = await self.client.request("POST", self._path("/steps"), body)
        self.current_step = int(answer["step"])
        return _wire.outputs(answer["outputs"])

    async def forecast(self, horizon: int) -> Array:
        """[horizon, O] predictions from the current state; the state is unchanged."""
        answer = await self.client.request("POST", self._path("/forecast"), {"horizon": horizon})
        return _wire.outputs(answer["forecast"])

    async def reset(self) -> None:
        self.current_step = int((await self.client.request("POST", self._path("/reset")))["step"])

    async def fork(self) -> AsyncSession:
        return AsyncSession(self.client, await self.client.request("POST", self._path("/fork")))

    async def export_state(self) -> dict[str, Any]:
        state: dict[str, Any] = await self.client.request("GET", self._path("/state"))
        return state

    async def refresh(self) -> dict[str, Any]:
        """The server's view of the session; `current_step` follows it."""
        self.info = await self.client.request("GET", self._path())
        self.current_step = int(self.info["step"])
        return self.info

    async def delete(self) -> None:
        await self.client.request("DELETE", self._path(), gone_ok=True)

    def stream(
        self, chunks: Iterable[Any] | AsyncIterable[Any], max_steps: int = 256, window: int = 8
    ) -> AsyncIterator[Array]:
        """Step `chunks` (each [T, F]) over the session's WebSocket, up to `window` messages
        in flight (capped by the server's replay depth); yields each chunk's outputs in
        order. See `seqserve.client._ws` for batching and resumption."""
        from seqserve.client._ws import stream_async

        return stream_async(self, chunks, max_steps, window)
