"""API keys: the configured key ring and the one rule for reading the `X-API-Key` header."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence

from seqserve.service.errors import Forbidden, MalformedRequest, Unauthorized

_HEADER = b"x-api-key"


def presented_key(
    headers: Sequence[tuple[bytes, bytes]], by_name: Mapping[bytes, bytes] | None = None
) -> str | None:
    """The `X-API-Key` a request carries; several are refused (400), never first- or last-wins.

    `by_name` is `dict(headers)` when the caller has it already (the hot path reads more)."""
    by_name = dict(headers) if by_name is None else by_name
    # a shorter dict means some header name repeats: only then count the key headers
    if len(by_name) < len(headers) and sum(name == _HEADER for name, _ in headers) > 1:
        raise MalformedRequest("send one X-API-Key header, not several")
    found = by_name.get(_HEADER)
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
        if not self.matches(presented):
            raise Unauthorized("the API key is not valid")
        return hashlib.sha256(presented.encode()).hexdigest()[:32]

    @property
    def empty(self) -> bool:
        return not self._keys

    def matches(self, presented: str) -> bool:
        candidate = presented.encode()
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(candidate, key)
        return matched


def check_admin(users: KeyRing, admins: KeyRing, presented: str | None) -> None:
    """Repository changes: open with no key configured at all, else admin keys only (a user
    key is known but not allowed: 403; no key or an unknown one: 401)."""
    if users.empty and admins.empty:
        return
    if presented is None:
        raise Unauthorized("send an admin API key in the X-API-Key header")
    if admins.matches(presented):
        return
    if users.matches(presented):
        raise Forbidden("this API key may not change the model repository: use an admin key")
    raise Unauthorized("the API key is not valid")
