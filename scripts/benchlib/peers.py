"""The peers the bench measures seqserve against: Mosec with a session dict (issue 13), in a
venv of its own under build/peers/ that the bench creates once and reuses."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import psutil
from launch import ServerProcess

REPO = Path(__file__).resolve().parents[2]
MOSEC_VENV = REPO / "build" / "peers" / "mosec-venv"
MOSEC_SERVER = REPO / "scripts" / "peers" / "mosec_server.py"
# the session goes in the body: Mosec routes one fixed path, with no path parameters
MOSEC_PATH = "/inference"
MOSEC_BODY = '{"session": "{id}", "inputs": [[415.2]]}'


@dataclass(frozen=True)
class Peer:
    """A peer's python, or why it could not be installed (then `python` is None)."""

    python: Path | None
    reason: str = ""
    versions: str = ""


def _requirements() -> list[str]:
    """mosec, and onnxruntime and numpy at the versions seqserve's own venv runs."""
    return ["mosec"] + [f"{n}=={metadata.version(n)}" for n in ("onnxruntime", "numpy")]


def mosec_venv(venv: Path = MOSEC_VENV, timeout_s: float = 600.0) -> Peer:
    """The venv's python, creating the venv on first use; a failed install is a reason."""
    python = venv / "bin" / "python"
    stamp = venv / "requirements.txt"
    wanted = "\n".join(_requirements())
    if python.is_file() and stamp.is_file() and stamp.read_text() == wanted:
        return Peer(python, versions=_versions(python))
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, *_requirements()], check=True, capture_output=True, text=True,
                       timeout=timeout_s)  # fmt: skip
    except subprocess.CalledProcessError as exc:
        tail = (exc.stderr or exc.stdout or "").strip().splitlines()[-1:] or ["no output"]
        return Peer(None, f"installing {' '.join(_requirements())} failed: {tail[0][:300]}")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Peer(None, f"creating {venv} failed: {type(exc).__name__}: {exc}")
    stamp.write_text(wanted)  # written last: a half-built venv is rebuilt next time
    return Peer(python, versions=_versions(python))


def _versions(python: Path) -> str:
    code = (
        "from importlib.metadata import version as v; "
        "print(', '.join(f'{n} {v(n)}' for n in ('mosec', 'onnxruntime', 'numpy')))"
    )
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    return proc.stdout.strip()


class TreeServerProcess(ServerProcess):
    """A server of several processes (Mosec: a Rust front and Python workers): CPU and RSS
    count the whole tree, so its CPU per step compares with a one-process server's."""

    def _tree(self) -> list[psutil.Process]:
        root = psutil.Process(self.pid)
        return [root, *root.children(recursive=True)]

    def cpu_seconds(self) -> float:
        total = 0.0
        for proc in self._tree():
            try:
                t = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system
        return total

    def rss(self) -> int:
        return sum(p.memory_info().rss for p in self._tree())


def mosec_server(python: Path, repository: Path, model: str, log_dir: Path) -> ServerProcess:
    argv = [str(python), str(MOSEC_SERVER), "--port", "{port}", "--address", "127.0.0.1"]
    argv += ["--repository", str(repository), "--model", model, "--log-level", "warning"]
    server = TreeServerProcess("mosec", argv, log_dir)
    server.env["OMP_NUM_THREADS"] = "1"
    return server
