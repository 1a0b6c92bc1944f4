"""Dependencies: the app context, the engine and the caller's identity, as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from seqserve.service.api.context import AppContext, app_context
from seqserve.service.api.keys import check_admin, presented_key
from seqserve.service.engine import Engine


async def _context(request: Request) -> AppContext:  # async: no thread-pool hop per request
    return app_context(request.app)


async def _engine(request: Request) -> Engine:
    return app_context(request.app).engine


async def _owner(request: Request) -> str | None:
    return app_context(request.app).keys.owner(presented_key(request.scope["headers"]))


async def _admin(request: Request) -> None:
    ctx = app_context(request.app)
    check_admin(ctx.keys, ctx.admin_keys, presented_key(request.scope["headers"]))


async def _reader(request: Request) -> None:
    """A user key, or an admin key (the repository index is read by both)."""
    ctx = app_context(request.app)
    presented = presented_key(request.scope["headers"])
    if presented is None or not ctx.admin_keys.matches(presented):
        ctx.keys.owner(presented)


ContextDep = Annotated[AppContext, Depends(_context)]
EngineDep = Annotated[Engine, Depends(_engine)]
OwnerDep = Annotated[str | None, Depends(_owner)]
AdminDep = Annotated[None, Depends(_admin)]
ReaderDep = Annotated[None, Depends(_reader)]


def caller_of(request: Request, owner: str | None) -> str:
    """Whom per-client caps count: the API key's owner id, else the client's address."""
    if owner is not None:
        return owner
    return f"addr:{request.client.host}" if request.client else "addr:?"


async def _caller(request: Request, owner: OwnerDep) -> str:
    return caller_of(request, owner)


CallerDep = Annotated[str, Depends(_caller)]
