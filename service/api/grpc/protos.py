"""The protocol's message and service modules, from the one place that imports them.

They are the generated modules tritonclient ships (`tritonclient.grpc.service_pb2`, generated
from Triton's grpc_service.proto): the stock client and this server then share one wire
definition. Install them with the `grpc` extra: pip install "seqserve[grpc]".
"""

from __future__ import annotations

HINT = 'the gRPC service needs the grpc extra: pip install "seqserve[grpc]"'

try:
    from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(f"{HINT} ({exc})") from exc

__all__ = ["model_config_pb2", "service_pb2", "service_pb2_grpc"]
