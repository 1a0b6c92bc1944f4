"""The stream's window without I/O: step indices, the server's depth cap, resends in order."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from seqserve.client._window import Batch, Window, server_depth


def _batch(steps: int) -> Batch:
    return Batch([np.ones((steps, 2))])


def test_messages_carry_consecutive_step_indices_and_resend_in_order() -> None:
    win = Window(start=5, size=4)
    win.connected({"seqserve-replay-depth": "8"})
    for steps in (1, 3, 2):
        win.add(_batch(steps))
    sent = [orjson.loads(t) for t in win.unsent()]
    assert [(m["step"], m["id"]) for m in sent] == [(5, 1), (6, 2), (9, 3)]
    assert win.unsent() == []  # nothing twice on one connection
    step, outputs = win.answered({"id": 1, "step": 6, "outputs": [[0.5]]})
    assert step == 6
    assert [o.tolist() for o in outputs] == [[[0.5]]]
    win.connected({"seqserve-replay-depth": "8"})  # a drop: the unanswered go out again
    assert [orjson.loads(t)["step"] for t in win.unsent()] == [6, 9]


def test_the_window_never_exceeds_the_servers_depth() -> None:
    win = Window(start=0, size=8)
    assert win.room()
    win.add(_batch(1))
    assert not win.room()  # before a server said its depth: one message
    win.connected({"seqserve-replay-depth": "2"})
    win.add(_batch(1))
    assert not win.room()
    assert server_depth(None) == server_depth({}) == server_depth({"x": "y"}) == 1
    assert server_depth({"seqserve-replay-depth": "junk"}) == 1


def test_an_answer_for_another_message_is_refused() -> None:
    win = Window(start=0, size=2)
    win.add(_batch(1))
    with pytest.raises(ValueError, match="answer 7"):
        win.answered({"id": 7, "step": 1, "outputs": [[0.0]]})
    assert len(win.pending) == 1
