"""`--workers N`: one listening socket, N worker processes accepting on it (pre-fork), one
session space in Redis, and a dead worker replaced by a new one.

uvicorn's own `Multiprocess` restarts dead workers too, but runs a plain `uvicorn.Server` in
each (no drain phase) from a pickled config; this is the same loop around service/worker.py.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

from seqserve.service.private_redis import NOT_FOUND, PrivateRedis, PrivateRedisError, find_binary
from seqserve.service.settings import Settings
from seqserve.service.state.factory import REDIS_EXTRA

log = logging.getLogger("seqserve.supervisor")
STARTUP_FAILURES = {2, 3}  # settings or model refused (2), server never started (3)


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)  # queued connections wait here while a worker restarts
    sock.set_inheritable(True)
    return sock


class Supervisor:
    def __init__(self, count: int, env: dict[str, str], stop_s: float) -> None:
        self.listener: socket.socket | None = None
        self.count = count
        self.env = env
        self.stop_s = stop_s
        self.procs: list[subprocess.Popen[bytes]] = []
        self.signals: list[int] = []
        # from the start: a SIGTERM while Redis starts still stops it on the way out
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _spawn(self) -> subprocess.Popen[bytes]:
        assert self.listener is not None
        fd = self.listener.fileno()
        argv = [sys.executable, "-m", "seqserve.service.worker", "--fd", str(fd)]
        argv += ["--supervisor", str(os.getpid())]  # a worker outliving it then knows
        # own session: a terminal's Ctrl-C reaches only the supervisor, which signals each
        # worker once (a second signal would skip a worker's drain delay)
        proc = subprocess.Popen(argv, env=self.env, pass_fds=(fd,), start_new_session=True)
        log.info("worker started", extra={"pid": proc.pid})
        return proc

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self.signals.append(sig)

    def run(self) -> int:
        self.procs = [self._spawn() for _ in range(self.count)]
        code = 0
        while not self.signals and not code:
            time.sleep(0.1)
            code = self._replace_dead()
        self._stop()
        return code

    def _replace_dead(self) -> int:
        """Start a new worker for each one that exited; a start-up failure stops them all."""
        for i, proc in enumerate(self.procs):
            status = proc.poll()
            if status is None:
                continue
            if status in STARTUP_FAILURES:
                log.error("worker could not start; stopping", extra={"pid": proc.pid})
                return status
            log.warning(
                "worker exited; starting another", extra={"pid": proc.pid, "status": status}
            )
            self.procs[i] = self._spawn()
        return 0

    def _stop(self) -> None:
        """SIGTERM each worker (it drains), again on each further signal; SIGKILL past stop_s."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        handled = len(self.signals)
        deadline = time.monotonic() + self.stop_s
        while any(p.poll() is None for p in self.procs) and time.monotonic() < deadline:
            time.sleep(0.05)
            if len(self.signals) > handled:  # a second Ctrl-C: skip what is left of the delay
                handled = len(self.signals)
                for proc in self.procs:
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def supervise(settings: Settings) -> int:
    """Run `settings.workers` workers until SIGTERM/SIGINT; the exit status."""
    env = dict(os.environ)
    stop_s = settings.drain_delay_s + settings.shutdown_timeout_s + 15
    supervisor = Supervisor(settings.workers, env, stop_s)
    if "model_control_mode" not in settings.model_fields_set:
        # a repository call would change one worker only: no model API unless asked for (poll)
        env["SEQSERVE_MODEL_CONTROL_MODE"] = "none"
    if importlib.util.find_spec("redis") is None:
        print(f"SEQSERVE_WORKERS > 1 keeps sessions in Redis: {REDIS_EXTRA}", file=sys.stderr)
        return 2
    redis: PrivateRedis | None = None
    if settings.state_store == "memory":
        binary = find_binary()
        if binary is None:
            print(NOT_FOUND, file=sys.stderr)
            return 2
        try:
            redis = PrivateRedis(binary).start()
        except PrivateRedisError as exc:
            print(f"SEQSERVE_WORKERS > 1: {exc}", file=sys.stderr)
            return 2
        env.update(SEQSERVE_STATE_STORE="redis", SEQSERVE_REDIS_URL=redis.url)
    try:
        try:
            supervisor.listener = listen(settings.host, settings.port)
        except OSError as exc:
            print(f"cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
            return 3
        host, port = supervisor.listener.getsockname()[:2]
        log.info(
            "listening",
            extra={
                "url": f"http://{host}:{port}",
                "workers": settings.workers,
                "redis": bool(redis),
            },
        )
        return supervisor.run()
    finally:
        if supervisor.listener is not None:
            supervisor.listener.close()
        if redis is not None:
            redis.stop()  # last: the workers may still commit while they drain
