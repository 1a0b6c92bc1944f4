"""The gRPC server: started by the app's lifespan on the same event loop, over the same context."""

from __future__ import annotations

import logging

import grpc
from seqserve.service.api.context import AppContext
from seqserve.service.settings import Settings

log = logging.getLogger("seqserve.grpc")
MIN_CLIENT_PING_MS = 5000  # clients may ping this often (tritonclient's keepalive options)


def _options(settings: Settings) -> list[tuple[str, int]]:
    keepalive_ms = int(settings.grpc_keepalive_s * 1000)
    size = settings.grpc_max_message_bytes
    return [
        ("grpc.max_receive_message_length", size),
        ("grpc.max_send_message_length", size),
        ("grpc.keepalive_time_ms", keepalive_ms),
        ("grpc.keepalive_timeout_ms", keepalive_ms),
        ("grpc.http2.min_ping_interval_without_data_ms", MIN_CLIENT_PING_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        # a port already taken must fail the start, not be silently shared with another process
        ("grpc.so_reuseport", 0),
    ]


def _address(settings: Settings) -> str:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"{host}:{settings.grpc_port}"


async def start(settings: Settings, ctx: AppContext, version: str) -> grpc.aio.Server:
    """Listen on `grpc_port` (TLS when a certificate is set); fails if the port is taken."""
    from seqserve.service.api.grpc.servicer import Servicer, add_to  # needs the grpc extra

    server = grpc.aio.server(options=_options(settings))
    add_to(server, Servicer(ctx, version))
    address = _address(settings)
    if settings.grpc_tls_cert is not None and settings.grpc_tls_key is not None:
        pair = (settings.grpc_tls_key.read_bytes(), settings.grpc_tls_cert.read_bytes())
        bound = server.add_secure_port(address, grpc.ssl_server_credentials([pair]))
    else:
        bound = server.add_insecure_port(address)
    if not bound:
        raise OSError(f"cannot listen for gRPC on {address} (SEQSERVE_GRPC_PORT): in use?")
    await server.start()
    log.info(
        "gRPC listening", extra={"address": address, "tls": settings.grpc_tls_cert is not None}
    )
    return server


async def stop(server: grpc.aio.Server, grace_s: float) -> None:
    """Refuse new calls, give running ones `grace_s`, then cancel what is left."""
    await server.stop(grace_s)
