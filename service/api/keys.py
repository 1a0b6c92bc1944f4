"""API keys: the configured key ring and the one rule for reading the `X-API-Key` header."""

from __future__ import annotations

import base64
import binascii
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


# Browsers cannot set headers on a WebSocket: they offer the key as a subprotocol instead,
# `seqserve.key.<base64url key>` next to plain `seqserve` (Kubernetes' bearer-token trick).
WS_PROTOCOL = "seqserve"
_WS_KEY_PREFIX = "seqserve.key."


def _offered(headers: Sequence[tuple[bytes, bytes]]) -> list[str]:
    return [
        p.strip()
        for name, value in headers
        if name == b"sec-websocket-protocol"
        for p in value.decode("latin-1").split(",")
    ]


def websocket_protocol(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """The subprotocol to accept: `seqserve` when offered (a browser requires one back)."""
    return WS_PROTOCOL if WS_PROTOCOL in _offered(headers) else None


def websocket_key(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """A WebSocket's API key: the `X-API-Key` header, else the key subprotocol."""
    key = presented_key(headers)
    tokens = [p for p in _offered(headers) if p.startswith(_WS_KEY_PREFIX)]
    if key is not None or not tokens:
        return key
    token = tokens[0].removeprefix(_WS_KEY_PREFIX)
    try:
        padded = token + "=" * (-len(token) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise MalformedRequest("the API key subprotocol is not base64url") from None


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
