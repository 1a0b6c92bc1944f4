"""Which protocol a path speaks, and so which renderer its errors take: v1 problem details
(`responses.problem_response`) or V2 `{"error"}` (`v2/errors.error_response`)."""

from __future__ import annotations

from seqserve.service.api.responses import problem_response
from seqserve.service.api.v2.errors import error_response
from seqserve.service.errors import SeqServeError
from starlette.responses import Response


def is_v2(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


def render_error(error: SeqServeError, path: str, instance: str | None = None) -> Response:
    """The error's answer in the protocol of `path` (`instance` goes into v1 problems only)."""
    if is_v2(path):
        return error_response(error)
    return problem_response(error, instance)
