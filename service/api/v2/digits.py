"""Integers spelled in V2 paths and headers: ASCII digits of bounded length, else a 400."""

from __future__ import annotations

MAX_DIGITS = 18  # below int64's 19: any count these fields name fits, and int() stays cheap


def parse_digits(text: str) -> int | None:
    """The value of `text` when it is 1 to MAX_DIGITS ASCII digits, else None. (str.isdigit
    also passes '²' and other Unicode digits that int() refuses.)"""
    if not 0 < len(text) <= MAX_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    return int(text)
