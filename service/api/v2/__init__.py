"""The KServe V2 / Triton HTTP protocol: a second adapter over the engine (see docs/v2.md)."""

from __future__ import annotations

from fastapi import APIRouter
from seqserve.service.api.v2 import errors, infer, server, stats

router = APIRouter()
# infer first (the hot path; its POST .../infer paths overlap nothing), then statistics
# (/v2/models/stats must win over /v2/models/{model}); the fallback last
for part in (infer.router, stats.router, server.router, errors.fallback):
    router.include_router(part)
