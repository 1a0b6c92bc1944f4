"""A small keep-alive HTTP/JSON client on the standard library (low, steady overhead)."""

from __future__ import annotations

import http.client
import time
from typing import Any
from urllib.parse import urlsplit

import orjson

JSON = {"Content-Type": "application/json"}


class Client:
    def __init__(self, url: str, timeout: float = 120.0) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.timeout = timeout
        self._conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        payload = None if body is None else orjson.dumps(body)
        for attempt in (0, 1):
            try:
                self._conn.request(method, path, payload, JSON if payload else {})
                resp = self._conn.getresponse()
                return resp.status, resp.read()
            except (ConnectionError, http.client.HTTPException):
                self._conn.close()
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        status, data = self.request(method, path, body)
        if status != expect:
            raise RuntimeError(f"{method} {path} -> {status}: {data[:300]!r}")
        return orjson.loads(data)

    def timed(self, method: str, path: str, body: Any = None) -> float:
        """Seconds for one request whose answer must be 2xx (body encoded before timing)."""
        payload = orjson.dumps(body)
        started = time.perf_counter()
        self._conn.request(method, path, payload, JSON)
        resp = self._conn.getresponse()
        data = resp.read()
        elapsed = time.perf_counter() - started
        if not 200 <= resp.status < 300:
            raise RuntimeError(f"{method} {path} -> {resp.status}: {data[:300]!r}")
        return elapsed

    def create_sessions(self, n: int, model: str = "co2", **extra: Any) -> list[str]:
        body = {"model": model, **extra}
        return [self.json("POST", "/v1/sessions", body, expect=201)["id"] for _ in range(n)]

    def close(self) -> None:
        self._conn.close()


def scrape(url: str) -> dict[str, float]:
    """Prometheus text -> {series (name plus labels): value}, without the comment lines."""
    client = Client(url)
    try:
        status, data = client.request("GET", "/metrics")
    finally:
        client.close()
    if status != 200:
        raise RuntimeError(f"GET /metrics -> {status}")
    values: dict[str, float] = {}
    for line in data.decode().splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            values[series] = float(value)
    return values


def metric_total(values: dict[str, float], name: str) -> float:
    """Sum of every series of one metric name (all label sets)."""
    return sum(v for k, v in values.items() if k == name or k.startswith(name + "{"))
