"""Dependencies: the engine and the caller's identity, reached through `Annotated` aliases."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Header, Request
from seqserve.service.engine import Engine
from seqserve.service.errors import Unauthorized


class KeyRing:
    """Configured API keys; checks compare against every key in constant time."""

    def __init__(self, keys: list[str]) -> None:
        self._keys = [k.encode() for k in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def owner(self, presented: str | None) -> str | None:
        """The owner id (a digest, never the key) for a valid key; None when auth is off."""
        if not self._keys:
            return None
        if presented is None:
            raise Unauthorized("send an API key in the X-API-Key header")
        candidate = presented.encode()
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(candidate, key)
        if not matched:
            raise Unauthorized("the API key is not valid")
        return hashlib.sha256(candidate).hexdigest()[:32]


async def _engine(request: Request) -> Engine:  # async: no thread-pool hop per request
    engine: Engine = request.app.state.engine
    return engine


async def _owner(
    request: Request, x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None
) -> str | None:
    keys: KeyRing = request.app.state.keys
    return keys.owner(x_api_key)


EngineDep = Annotated[Engine, Depends(_engine)]
OwnerDep = Annotated[str | None, Depends(_owner)]


def caller_of(request: Request, owner: str | None) -> str:
    """Whom per-client caps count: the API key's owner id, else the client's address."""
    if owner is not None:
        return owner
    return f"addr:{request.client.host}" if request.client else "addr:?"


async def _caller(request: Request, owner: OwnerDep) -> str:
    return caller_of(request, owner)


CallerDep = Annotated[str, Depends(_caller)]
