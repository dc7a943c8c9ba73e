"""Why a landing file cannot be ingested at all (it is then rejected whole)."""

from __future__ import annotations


class FileRejected(Exception):
    """The file cannot be read at all; its message is one sentence for people."""


class RecordTooLarge(Exception):
    """A CSV record does not fit the reader's block; the caller retries with a bigger block."""
