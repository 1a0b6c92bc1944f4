"""Request bodies: the JSON Content-Type rule, hot-path bodies validated straight from bytes by
pydantic-core (skipping FastAPI's json.loads + dependency machinery) and validation errors as
domain errors, the same whichever lane a request took."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from seqserve.service.errors import BadInput, MalformedRequest, SeqServeError
from starlette.types import Receive

M = TypeVar("M", bound=BaseModel)


class UnsupportedMediaType(SeqServeError):
    status, title, slug = 415, "Unsupported media type", "unsupported-media-type"

    def __init__(self, content_type: str) -> None:
        super().__init__(
            f"send the body as JSON with Content-Type: application/json (got {content_type!r})"
        )


def is_json(content_type: str) -> bool:
    """FastAPI's rule for reading a body as JSON: application/json or application/*+json."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def require_json(content_type: bytes | None) -> None:
    """Refuse a body not labelled JSON (text/plain, forms, none): a cross-site form can't."""
    if content_type == b"application/json":  # what every client sends: no parsing
        return
    text = "" if content_type is None else content_type.decode("latin-1")
    if not is_json(text):
        raise UnsupportedMediaType(text)


def validation_error(raw: Sequence[Mapping[str, Any]]) -> SeqServeError:
    """Pydantic's errors as one domain error: 400 for broken JSON, 422 for wrong values."""
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in raw[:20]
    ]
    detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:3])
    if any(e["type"] == "json_invalid" for e in errors):
        return MalformedRequest(detail, errors=errors)
    return BadInput(detail, errors=errors)


def parse_body(model: type[M], raw: bytes) -> M:
    """Validate a JSON body; errors are reported as FastAPI's would be (loc starts "body")."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise validation_error(errors) from None


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b""  # the client went away
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` documenting `model` as the JSON request body."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
