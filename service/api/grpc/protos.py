"""The protocol's message and service modules, from the one place that imports them.

They are the generated modules tritonclient ships (`tritonclient/grpc/service_pb2.py`,
generated from Triton's grpc_service.proto): the stock client and this server then share one
wire definition. Install them with the `grpc` extra: pip install "seqserve[grpc]".

They are loaded from their files, not through `tritonclient.grpc`: that package's `__init__`
imports the whole client (NumPy helpers, rapidjson, ml_dtypes: 30 MB the server never uses,
left out of the Docker image). The only lines changed are the generated modules' imports of
each other; the descriptors land in protobuf's default pool as the client's own do, so both can
live in one process.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

HINT = 'the gRPC service needs the grpc extra: pip install "seqserve[grpc]"'
_SIBLING = "from tritonclient.grpc import {name} as {alias}\n"


def _folder() -> Path:
    spec = importlib.util.find_spec("tritonclient")  # the top package only: it is empty
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{HINT} (no tritonclient)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "grpc"
    if not (folder / "service_pb2.py").is_file():
        raise ImportError(f"{HINT} (tritonclient without its gRPC modules)")
    return folder


def _load(name: str, siblings: dict[str, ModuleType]) -> ModuleType:
    """Generated module `name`, its `from tritonclient.grpc import X as Y` lines bound to the
    modules in `siblings` instead."""
    path = _folder() / f"{name}.py"
    source = path.read_text()
    module = ModuleType(f"{__name__}.{name}")
    module.__file__ = str(path)
    for sibling, loaded in siblings.items():
        for alias in _aliases(source, sibling):
            source = source.replace(_SIBLING.format(name=sibling, alias=alias), "")
            module.__dict__[alias] = loaded
    if "from tritonclient" in source:
        raise ImportError(f"{path}: an import this loader does not know; {HINT}")
    sys.modules[module.__name__] = module
    exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102 - generated code
    return module


def _aliases(source: str, sibling: str) -> list[str]:
    prefix = f"from tritonclient.grpc import {sibling} as "
    return [line[len(prefix) :].strip() for line in source.splitlines() if line.startswith(prefix)]


model_config_pb2 = _load("model_config_pb2", {})
service_pb2 = _load("service_pb2", {"model_config_pb2": model_config_pb2})
service_pb2_grpc = _load("service_pb2_grpc", {"service_pb2": service_pb2})

__all__ = ["model_config_pb2", "service_pb2", "service_pb2_grpc"]
