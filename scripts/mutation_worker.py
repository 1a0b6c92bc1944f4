"""A mutation worker: a fork server that runs pytest on one mutant at a time in its link tree.

scripts/mutation.py starts one per job slot as `python scripts/mutation_worker.py TREE` with
PYTHONPATH=TREE:<repository>, PYTHONSAFEPATH=1 and cwd TREE/run, and talks JSON lines over
stdin/stdout. The worker imports the heavy third-party modules once (numpy, ONNX Runtime,
FastAPI, pytest, ...) and forks a child per run, so a mutant costs its tests plus pytest's
collection, not a fresh interpreter (about 5 s of imports here). The child imports seqserve
from TREE, where the mutated module is a real file and every other file a symlink.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

# Never imported in the server: they start threads or hubs that a fork would not carry.
NO_PRELOAD = ("grpc", "tritonclient", "gevent", "geventhttpclient", "zmq", "torch")
TIMED_OUT = 124  # the child's exit status when a test hangs
ROOT = Path(__file__).resolve().parents[1]
OWN = ("seqserve", "tests", "scripts", "conftest", "__main__", "mutation_worker")


def main() -> None:
    tree = Path(sys.argv[1]).resolve()
    out = sys.stdout
    sys.stdout = sys.stderr  # stray prints must not corrupt the protocol
    for line in sys.stdin:
        job = json.loads(line)
        try:
            reply = handle(tree, job)
        except Exception:
            reply = {"id": job.get("id"), "rc": -1, "error": traceback.format_exc()}
        out.write(json.dumps(reply) + "\n")
        out.flush()


def handle(tree: Path, job: dict[str, Any]) -> dict[str, Any]:
    if job["op"] == "preload":
        return {"failed": preload(job["modules"])}
    if job["op"] == "where":
        return where(tree, job)
    return run(tree, job)


def preload(names: list[str]) -> list[str]:
    failed = []
    for name in names:
        if name.split(".")[0] in OWN or name.split(".")[0].startswith(NO_PRELOAD):
            continue
        try:
            importlib.import_module(name)
        except BaseException:  # noqa: BLE001 - a module that can't preload just loads later
            failed.append(name)
    return failed


def where(tree: Path, job: dict[str, Any]) -> dict[str, Any]:
    """Where a child finds seqserve.service and the modules to mutate (all must be in TREE)."""
    log = Path(job["log"])

    def child() -> int:
        files = {}
        for module in job["modules"]:
            name = "seqserve." + module.removesuffix(".py").replace("/", ".")
            files[module] = importlib.import_module(name).__file__
        log.write_text(json.dumps(files))
        return 0

    rc, _, _ = fork(child, log.with_suffix(".out"), 120)
    files = json.loads(log.read_text()) if rc == 0 else {}
    return {"rc": rc, "files": files}


def run(tree: Path, job: dict[str, Any]) -> dict[str, Any]:
    """One pytest run, on the mutant in job["text"] (none: the unmutated tree)."""
    module = job.get("module")
    target = tree / "seqserve" / module if module else None
    original = Path(os.readlink(target)) if target and job.get("text") is not None else None
    log = Path(job["log"])
    try:
        if target and original:
            target.unlink()
            target.write_text(job["text"])
            _drop_bytecode(target)
        rc, seconds, timed_out = fork(lambda: pytest_child(tree, job), log, job["timeout"])
    finally:
        if target and original:
            target.unlink()
            target.symlink_to(original)
            _drop_bytecode(target)
    text = log.read_text(errors="replace") if log.exists() else ""
    return {
        "id": job["id"],
        "rc": rc,
        "seconds": round(seconds, 2),
        "timed_out": timed_out,
        "failed": _first_failure(text),
        "tail": text[-3000:],
    }


def _drop_bytecode(path: Path) -> None:
    # The .pyc of a mutated module is keyed by mtime and size: the next mutant of the same
    # module, written in the same second with the same size, would reuse it.
    Path(importlib.util.cache_from_source(str(path))).unlink(missing_ok=True)


def _first_failure(text: str) -> str | None:
    for line in text.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" ", 1)[1].split(" - ")[0]
    return None


def pytest_child(tree: Path, job: dict[str, Any]) -> int:
    # Import the package from the tree before pytest puts the repository root (which holds
    # another `seqserve/`, the CLI's) first on sys.path for the tests package.
    import seqserve

    if not str(Path(seqserve.__file__ or "").parent).startswith(str(tree)):
        print(f"mutation_worker: seqserve comes from {seqserve.__file__}, not {tree}")
        return 99
    import pytest

    cov = None
    if job.get("coverage"):
        import coverage

        cov = coverage.Coverage(
            data_file=job["coverage"],
            # coverage resolves symlinks: the files are measured where they really are
            source=[str(tree / "seqserve" / "service"), str(ROOT / "service")],
            config_file=False,
        )
        cov.start()
    recorder = Recorder(cov, job.get("budgets"))
    try:
        rc = int(pytest.main(job["args"], plugins=[recorder]))
    finally:
        if cov:
            cov.stop()
            cov.save()
    if job.get("record"):
        Path(job["record"]).write_text(json.dumps(recorder.summary()))
    return rc


class Recorder:
    """A pytest plugin: names coverage contexts after the test running, and notes each test's
    outcome and duration (the baseline: failing tests are never selected; fast ones first)."""

    def __init__(self, cov: Any, budgets: dict[str, float] | None) -> None:
        self.cov = cov
        self.tests: dict[str, dict[str, Any]] = {}
        self.budgets = budgets or {}
        self.deadline: tuple[str, float] | None = None
        if budgets:
            threading.Thread(target=self._watch, daemon=True).start()

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        if self.cov:
            self.cov.switch_context(nodeid)
        if nodeid in self.budgets:
            self.deadline = (nodeid, time.monotonic() + self.budgets[nodeid])

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        if self.cov:
            self.cov.switch_context("")
        self.deadline = None

    def _watch(self) -> None:
        """A test far past its baseline time hangs: end the run now (the worker reports a
        timeout) rather than wait out the whole run's limit."""
        while True:
            time.sleep(0.2)
            deadline = self.deadline
            if deadline and time.monotonic() > deadline[1]:
                os.write(2, f"\nTIMEOUT {deadline[0]}\n".encode())
                os._exit(TIMED_OUT)

    def pytest_runtest_logreport(self, report: Any) -> None:
        test = self.tests.setdefault(report.nodeid, {"outcome": "passed", "seconds": 0.0})
        test["seconds"] += report.duration
        if report.failed:
            test["outcome"] = "failed"
        elif report.skipped and test["outcome"] == "passed":
            test["outcome"] = "skipped"

    def summary(self) -> dict[str, Any]:
        order = list(self.tests)
        # every module the tests imported: the worker imports them before it forks (the
        # first load of a module, say FastAPI's TestClient, costs more than most tests)
        modules = sorted(name for name in sys.modules if name.replace(".", "_").isidentifier())
        return {"tests": self.tests, "order": order, "modules": modules}


def fork(body: Any, log: Path, timeout: float) -> tuple[int, float, bool]:
    """Runs body() in a forked child (its own session, output to log); (rc, seconds, timed
    out). A child past the timeout is killed with everything it started."""
    sys.stderr.flush()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child
        rc = 98
        try:
            os.setsid()
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            sys.stdout = sys.__stdout__ = os.fdopen(1, "w", buffering=1)
            sys.stderr = sys.__stderr__ = os.fdopen(2, "w", buffering=1)
            rc = body()
        except BaseException:  # noqa: BLE001 - whatever happens, report it and exit
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(rc)
    deadline = start + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        late = not done and time.monotonic() > deadline
        if late:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        if done or late:
            # whatever the child started and left behind (a redis-server) goes with it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            rc = -9 if late else os.waitstatus_to_exitcode(status)
            return rc, time.monotonic() - start, late or rc == TIMED_OUT
        time.sleep(0.02)


if __name__ == "__main__":
    main()
