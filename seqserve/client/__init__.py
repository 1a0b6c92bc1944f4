"""The seqserve Python client: sessions stepped exactly once over HTTP and WebSocket.

    from seqserve.client import Client
    with Client("http://127.0.0.1:8000") as client:
        print(client.create_session("co2").step([[315.0], [316.2]]))

Importing it pulls in httpx, websockets, numpy and orjson only, never the server.
"""

from seqserve.client._async import AsyncClient, AsyncSession
from seqserve.client._sync import Client, Session
from seqserve.client.errors import (
    BadInput,
    Conflict,
    NotFound,
    Overloaded,
    SeqServeClientError,
    ServerError,
    SessionGone,
    StepConflict,
    StreamBroken,
    TransportError,
    Unauthorized,
)

__all__ = [
    "AsyncClient",
    "AsyncSession",
    "BadInput",
    "Client",
    "Conflict",
    "NotFound",
    "Overloaded",
    "SeqServeClientError",
    "ServerError",
    "Session",
    "SessionGone",
    "StepConflict",
    "StreamBroken",
    "TransportError",
    "Unauthorized",
]
