"""Compact session metadata: NumPy columns indexed by slot, and ids that name their slot.

A session id is base64url(slot as 4 bytes + 16 random bytes): the lookup decodes the slot and
compares the 128-bit secret stored there in constant time, so a million sessions need no
Python object, dict entry or string each. Ids chosen by an adapter (V2 sequence ids) fall back
to a small dict.
"""

from __future__ import annotations

import binascii
import hmac
import re
import secrets

import numpy as np
from seqserve.service.runtime.layout import MAX_STEP
from seqserve.service.state.store import Replay

Array = np.ndarray
_ID_BYTES = 20
DIGEST_BYTES = 16
_COLUMNS: dict[str, tuple[str, tuple[int, ...]]] = {
    "secret": ("u1", (16,)),
    "step": ("i8", ()),
    "created_at": ("f8", ()),
    "last_used": ("f8", ()),
    "idle_ttl_s": ("f8", ()),
    "ttl_s": ("f8", ()),
    "model": ("i2", ()),  # index into SessionTable.models
    "row": ("i4", ()),  # slab row of the session's state
    "owner": ("i4", ()),  # index into SessionTable.owners, -1: none
    "replay_len": ("i4", ()),  # timesteps of the stored last request, 0: none
    "replay_digest": ("u1", (DIGEST_BYTES,)),
    "live": ("?", ()),
}


def unfit(step: int, replay: Replay | None, n_outputs: int) -> str | None:
    """Why a session's step and stored reply cannot go into the columns, or None: checked
    before anything is written, so a commit never fails half-way."""
    if not 0 <= step <= MAX_STEP:
        return f"step must be in [0, {MAX_STEP}]"
    if replay is not None and (
        len(replay.digest) != DIGEST_BYTES
        or replay.outputs.ndim != 2
        or not 1 <= replay.outputs.shape[0] <= step
        or replay.outputs.shape[1] != n_outputs
    ):
        return "the step's stored reply does not fit the session"
    return None


# base64url of 20 bytes: 27 characters, the last one's 2 unused low bits zero (the canonical
# spelling; no other spelling of an id is accepted)
_CANONICAL_ID = re.compile(r"[A-Za-z0-9_-]{26}[AEIMQUYcgkosw048]")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def encode_id(slot: int, secret: bytes, mask: int = 0) -> str:
    raw = (slot ^ mask).to_bytes(4, "big") + secret
    # binascii directly: the base64 module's wrappers cost as much again, on every step
    return binascii.b2a_base64(raw, newline=False).translate(_TO_URLSAFE)[:27].decode()


def decode_id(session_id: str, mask: int = 0) -> tuple[int, bytes] | None:
    if _CANONICAL_ID.fullmatch(session_id) is None:
        return None
    raw = binascii.a2b_base64(session_id.encode().translate(_FROM_URLSAFE) + b"=")
    return int.from_bytes(raw[:4], "big") ^ mask, raw[4:]


class SessionTable:
    def __init__(self, capacity: int = 1024) -> None:
        self.cols = {
            name: np.zeros((capacity, *shape), dtype) for name, (dtype, shape) in _COLUMNS.items()
        }
        self._free = np.arange(capacity - 1, -1, -1, dtype=np.int32)
        self._n_free = capacity
        self.named: dict[str, int] = {}  # adapter-chosen ids
        self.names: dict[int, str] = {}
        self.models: list[tuple[str, str]] = []
        self.owners: list[str] = []
        self._model_index: dict[tuple[str, str], int] = {}
        self._owner_index: dict[str, int] = {}
        self.count = 0
        self._mask = secrets.randbits(32)  # ids do not spell out slot numbers (or counts)

    @property
    def capacity(self) -> int:
        return int(self.cols["live"].shape[0])

    def model_index(self, key: tuple[str, str]) -> int:
        if key not in self._model_index:
            self._model_index[key] = len(self.models)
            self.models.append(key)
        return self._model_index[key]

    def owner_index(self, owner: str | None) -> int:
        if owner is None:
            return -1
        if owner not in self._owner_index:
            self._owner_index[owner] = len(self.owners)
            self.owners.append(owner)
        return self._owner_index[owner]

    def find_owner(self, owner: str) -> int:
        """The owner's index, or -2 (matches no session) for an owner never seen."""
        return self._owner_index.get(owner, -2)

    def alloc(self, name: str | None) -> tuple[int, str]:
        """A free slot and the session id naming it (`name` when the caller chose one)."""
        if self._n_free == 0:
            self._grow()
        self._n_free -= 1
        slot = int(self._free[self._n_free])
        secret = secrets.token_bytes(16)
        self.cols["secret"][slot] = np.frombuffer(secret, np.uint8)
        self.cols["live"][slot] = True
        self.count += 1
        if name is None:
            return slot, encode_id(slot, secret, self._mask)
        self.named[name] = slot
        self.names[slot] = name
        return slot, name

    def free(self, slot: int) -> None:
        self.cols["live"][slot] = False
        self.cols["secret"][slot] = 0
        name = self.names.pop(slot, None)
        if name is not None:
            del self.named[name]
        self._free[self._n_free] = slot
        self._n_free += 1
        self.count -= 1

    def find(self, session_id: str) -> int | None:
        """The live slot of `session_id`, or None."""
        slot = self.named.get(session_id)
        if slot is not None:
            return slot
        decoded = decode_id(session_id, self._mask)
        if decoded is None:
            return None
        slot, secret = decoded
        if slot >= self.capacity or not self.cols["live"][slot] or slot in self.names:
            return None
        stored = self.cols["secret"][slot].tobytes()
        return slot if hmac.compare_digest(stored, secret) else None

    def session_id(self, slot: int) -> str:
        secret = self.cols["secret"][slot].tobytes()
        return self.names.get(slot) or encode_id(slot, secret, self._mask)

    def _grow(self) -> None:
        old = self.capacity
        for name, col in self.cols.items():
            grown = np.zeros((old * 2, *col.shape[1:]), col.dtype)
            grown[:old] = col
            self.cols[name] = grown
        self._free = np.concatenate(
            [np.arange(2 * old - 1, old - 1, -1, dtype=np.int32), np.empty(old, np.int32)]
        )
        self._n_free = old
