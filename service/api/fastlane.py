"""The fast lane: the hot paths answered straight from ASGI, before FastAPI's routing.

A step is the request seqserve serves most; FastAPI's routing and dependency machinery cost
more than the step itself. This middleware is a table from path pattern to each hot path's one
handler, owned by its protocol's module; the FastAPI routes of these paths only document them.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from seqserve.service.api import sessions
from seqserve.service.api.v2 import infer
from starlette.types import ASGIApp, Receive, Scope, Send

Handler = Callable[..., Awaitable[None]]  # (scope, receive, send, *path parameters)


@dataclass(frozen=True)
class Lane:
    pattern: re.Pattern[str]
    path: str  # the route template: the metrics label, as for a routed request
    handler: Handler


LANES = (  # POST only
    Lane(
        re.compile(r"^/v1/sessions/([^/]+)/steps$"),
        "/v1/sessions/{session_id}/steps",
        sessions.step,
    ),
    Lane(re.compile(r"^/v2/models/([^/]+)/infer$"), "/v2/models/{model}/infer", infer.infer),
    Lane(
        re.compile(r"^/v2/models/([^/]+)/versions/([^/]+)/infer$"),
        "/v2/models/{model}/versions/{version}/infer",
        infer.infer,
    ),
)


class FastLane:
    """Sends a POST whose path matches a lane to that lane's handler; the rest to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            for lane in LANES:
                if (match := lane.pattern.match(path)) is not None:
                    scope["route"] = lane
                    await lane.handler(scope, receive, send, *match.groups())
                    return
        await self.app(scope, receive, send)
