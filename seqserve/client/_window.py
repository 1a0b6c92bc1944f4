"""A stream's messages in flight, free of I/O: what to send, what to resend after a drop,
and which chunks an answer belongs to.

Each message carries the step index it starts at, so after a dropped connection every
message not yet answered is resent as it was: the server answers one it had applied from its
stored answers (it keeps the last `replay_depth`, announced in the WebSocket handshake's
`seqserve-replay-depth` header) and applies the rest. The window therefore never holds more
messages than that depth.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from seqserve.client import _wire

Array = _wire.Array
DEPTH_HEADER = "seqserve-replay-depth"
END = object()  # the caller's chunks are exhausted


@dataclass
class Batch:
    """Chunks sent together as one message (chunks already waiting ride along)."""

    chunks: list[Array]

    def split(self, outputs: Any) -> list[Array]:
        cuts = np.cumsum([len(c) for c in self.chunks])[:-1]
        return list(np.split(_wire.outputs(outputs), cuts))

    @property
    def steps(self) -> int:
        return sum(len(c) for c in self.chunks)


def gather(first: Array, more: Iterator[Any], max_steps: int) -> tuple[Batch, Any]:
    """`first` plus the chunks already waiting, up to max_steps; also the one held back."""
    batch = Batch([first])
    for item in more:
        if item is END or not isinstance(item, np.ndarray) or batch.steps + len(item) > max_steps:
            return batch, item
        batch.chunks.append(item)
    return batch, None


@dataclass
class Sent:
    batch: Batch
    start: int  # the step index the message expects to start at
    number: int  # its "id", echoed in the answer
    text: str


def server_depth(headers: Mapping[str, str] | None) -> int:
    """The replay depth a server announced; 1 (its last answer only) when it did not."""
    value = headers.get(DEPTH_HEADER) if headers is not None else None
    try:
        return max(1, int(value)) if value is not None else 1
    except ValueError:
        return 1


class Window:
    """Messages sent and not yet answered, oldest first, at most `size` (and at most the
    connected server's depth)."""

    def __init__(self, start: int, size: int) -> None:
        if size < 1:
            raise ValueError("window must be at least 1")
        self.size = size
        self.limit = 1  # until a server says its depth
        self.pending: deque[Sent] = deque()
        self._next = start
        self._number = 0
        self._sent = 0  # messages of `pending` already sent on the current connection

    def room(self) -> bool:
        return len(self.pending) < self.limit

    def add(self, batch: Batch) -> None:
        self._number += 1
        inputs = np.concatenate(batch.chunks) if len(batch.chunks) > 1 else batch.chunks[0]
        body = {"inputs": inputs, "step": self._next, "id": self._number}
        self.pending.append(Sent(batch, self._next, self._number, _wire.encode(body).decode()))
        self._next += batch.steps

    def connected(self, headers: Mapping[str, str] | None) -> None:
        """A new connection: every pending message goes out again, in order."""
        self.limit = min(self.size, server_depth(headers))
        self._sent = 0

    def unsent(self) -> list[str]:
        texts = [sent.text for sent in list(self.pending)[self._sent :]]
        self._sent = len(self.pending)
        return texts

    def answered(self, msg: dict[str, Any]) -> tuple[int, list[Array]]:
        """The oldest message's answer: the step it ends at, and each chunk's outputs."""
        sent = self.pending[0]
        if msg.get("id", sent.number) != sent.number:
            raise ValueError(f"answer {msg.get('id')!r} for message {sent.number}")
        self.pending.popleft()
        self._sent -= 1
        return int(msg["step"]), sent.batch.split(msg["outputs"])
