"""Server processes for the benchmark: start on a free port, poll readiness, stop cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One server process; `start()` polls `ready_path` and never sleeps blindly."""

    def __init__(
        self, name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv = [a.replace("{port}", str(self.port)) for a in argv]
        self.env = {**os.environ, **(env or {})}
        self.log_path = log_dir / f"{name}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def seqserve(cls, log_dir: Path, repository: Path | None, **env: str) -> Server:
        settings = {"SEQSERVE_PORT": "{port}", "SEQSERVE_LOG_LEVEL": "warning", **env}
        if repository is not None:
            settings["SEQSERVE_MODEL_REPOSITORY"] = str(repository)
        server = cls("seqserve", [sys.executable, "-m", "seqserve.service"], log_dir)
        server.env.update({k: v.replace("{port}", str(server.port)) for k, v in settings.items()})
        return server

    @classmethod
    def script(cls, name: str, path: Path, log_dir: Path, *args: str) -> Server:
        return cls(name, [sys.executable, str(path), "--port", "{port}", *args], log_dir)

    def start(self, ready_path: str = "/readyz", timeout: float = 90.0) -> Server:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + ready_path, timeout=1.0) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready in {timeout}s:\n{self.log()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far."""
        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system)

    def rss(self) -> int:
        return int(psutil.Process(self.pid).memory_info().rss)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
