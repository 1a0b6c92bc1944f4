"""The V2 routes in matching order, as one router for the app factory."""

from __future__ import annotations

from fastapi import APIRouter
from seqserve.service.api.v2 import errors, infer, repository, server, stats

router = APIRouter()
# infer (documented here, answered by the fast lane), then statistics
# (/v2/models/stats must win over /v2/models/{model}); the fallback last
for part in (infer.router, stats.router, server.router, repository.router, errors.fallback):
    router.include_router(part)
