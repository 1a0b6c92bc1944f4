"""API keys: the configured key ring and the one rule for reading the `X-API-Key` header."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from seqserve.service.errors import MalformedRequest, Unauthorized

_HEADER = b"x-api-key"


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The `X-API-Key` a request carries; two of them are refused, not first- or last-wins."""
    found: bytes | None = None
    for name, value in headers:
        if name == _HEADER:
            if found is not None:
                raise MalformedRequest("send one X-API-Key header, not several")
            found = value
    return None if found is None else found.decode("latin-1")


class KeyRing:
    """Configured API keys; checks compare against every key in constant time."""

    def __init__(self, keys: list[str]) -> None:
        self._keys = [k.encode() for k in keys]

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
