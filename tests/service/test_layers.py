"""The serving code imports downward only: every module's imports checked against its floor."""

from __future__ import annotations

import ast
from pathlib import Path

SERVICE = Path(__file__).parents[2] / "service"
PACKAGE = "seqserve.service"

# What each unit (a folder, or a module at the top of service/) may import besides itself.
# Ground floor: the leaves and runtime (model files, manifest, loaded versions, state layout).
# Then state, batching, the engine and its helpers, and the adapters (api, app) on top.
LEAVES = {"errors", "settings", "metrics", "logs", "tracing"}
ALLOWED: dict[str, set[str]] = {
    "__init__": set(),
    "errors": set(),
    "settings": set(),
    "metrics": set(),
    "logs": set(),
    # optional OpenTelemetry: its trace-id hook goes into the logs, its options from settings
    "tracing": {"logs", "settings"},
    "drain": set(),
    "settings_errors": set(),
    "runtime": {"errors", "settings"},  # ORT providers and session options (OrtSettings)
    # the factory picks a store from settings and hands it the metrics
    "state": {"errors", "runtime", "settings", "metrics"},
    # metrics and tracing: the batch observer and batch spans (type imports)
    "batching": {"errors", "runtime", "state", "metrics", "tracing"},
    "session_locks": {"errors"},
    "heavy_gate": {"errors"},
    "connections": set(),
    "checks": {"errors", "runtime", "settings"},
    "stateless": {"errors", "runtime", "settings", "batching", "checks"},
    # loading/unloading versions while serving: the registry's changes, one at a time
    "repository": {"errors", "runtime", "settings"},
    "engine": LEAVES
    | {
        "runtime",
        "state",
        "batching",
        "checks",
        "stateless",
        "session_locks",
        "heavy_gate",
        "repository",
    },
    "api": LEAVES | {"runtime", "state", "engine"},
    "app": LEAVES | {"runtime", "state", "engine", "api"},
    "__main__": {"app", "connections", "drain", "errors", "settings", "settings_errors", "logs"}
    | {"runtime", "supervisor"},  # the loaded models' type; --workers N hands over to supervisor
    # --workers N: the supervisor, its private Redis, and each worker (the server of __main__)
    "private_redis": set(),
    "supervisor": {"private_redis", "settings", "state"},
    "worker": {"__main__", "app", "drain", "logs", "settings", "settings_errors"},
}


def _unit(path: Path) -> str:
    rel = path.relative_to(SERVICE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _targets(path: Path, text: str) -> list[tuple[int, str]]:
    """(line, dotted name) of everything the module imports, at any depth of it."""
    # the package a relative import starts from: the folder of `path` (also for __init__.py)
    package = [*PACKAGE.split("."), *path.relative_to(SERVICE).parts[:-1]]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            start = package[: len(package) + 1 - node.level] if node.level else []
            base = ".".join([*start, *([node.module] if node.module else [])])
            # `from seqserve.service import engine` imports the module engine
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def violations(path: Path, text: str | None = None) -> list[str]:
    unit = _unit(path)
    allowed = ALLOWED.get(unit)
    if allowed is None:
        return [f"{path.relative_to(SERVICE.parent)}: unit {unit!r} has no floor in ALLOWED"]
    out = []
    for line, name in _targets(path, path.read_text() if text is None else text):
        where = f"{path.relative_to(SERVICE.parent)}:{line}"
        if name.startswith(PACKAGE + "."):
            target = name.removeprefix(PACKAGE + ".").split(".")[0]
            if target != unit and target not in allowed:
                out.append(f"{where} imports {name} ({unit} may import {sorted(allowed)})")
        elif name.split(".")[0] in ("seqserve", "torch"):
            out.append(f"{where} imports {name}: service/ stands alone and stays torch-free")
    return out


def test_service_imports_downward_only() -> None:
    modules = sorted(SERVICE.rglob("*.py"))
    assert len(modules) > 40  # the walk found the code
    problems = [v for path in modules for v in violations(path)]
    assert not problems, "\n".join(problems)


def test_an_upward_import_is_named_with_its_file_and_line() -> None:
    probe = SERVICE / "runtime" / "probe.py"
    text = "import numpy\nfrom .. import errors\nfrom ..state import store\n"
    assert violations(probe, text) == [
        "service/runtime/probe.py:3 imports seqserve.service.state.store (runtime may import "
        "['errors', 'settings'])"
    ]
    assert violations(SERVICE / "api" / "probe.py", "import torch\n") == [
        "service/api/probe.py:1 imports torch: service/ stands alone and stays torch-free"
    ]
