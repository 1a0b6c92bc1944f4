"""The one error the importer raises: its message names the cause and the tensors involved."""

from __future__ import annotations


class ImportRefused(Exception):
    """The model cannot be imported as it is (or with the flags given)."""
