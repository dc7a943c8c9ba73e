"""Paths and settings from the environment.

Two roots (data-contract.md): definitions (`--defs`, env `SEGMENTS_DEFS`,
default `./segment_defs`) and data (`--data`, env `SEGMENTS_DATA`, default
`./data`). Everything the pipeline reads and writes lives below the data root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from ..errors import UserError


class _Under:
    """A path below the data root: a read-only attribute of `Paths`."""

    def __init__(self, *parts: str):
        self.parts = parts

    def __get__(self, paths: Paths, owner: type | None = None) -> Path:
        return paths.data.joinpath(*self.parts)


@dataclass(frozen=True)
class Paths:
    defs: Path
    data: Path

    landing = _Under("landing")  # inputs
    landing_subscribers = _Under("landing", "subscribers")
    landing_events = _Under("landing", "events")
    lake = _Under("lake")  # the typed Parquet lake and the ingest ledger
    archive = _Under("archive")
    rejected = _Under("rejected")
    published = _Under("published")  # published state
    warehouse = _Under("warehouse.duckdb")
    lock_file = _Under(".run.lock")


def resolve_paths(defs: str | os.PathLike | None = None, data: str | os.PathLike | None = None) -> Paths:
    """Explicit arguments win over the environment, which wins over the defaults."""
    # Kept as the user gave them, so messages show familiar paths; callers that
    # need absolute paths (warehouse views) resolve them.
    return Paths(defs=Path(defs or os.environ.get("SEGMENTS_DEFS") or "segment_defs"),
                 data=Path(data or os.environ.get("SEGMENTS_DATA") or "data"))


# Bumped whenever a change to the compilers changes who is a member of the same
# definition on the same data (2: case folding, segments/case.py; 3: case.py's pinned
# table, exact numeric comparisons, segments/numeric.py). Flags computed under
# another version are not reused (the next run evaluates in full), and the same
# inputs are not the same run (run/prepare.py, run/inputs.py).
SEMANTICS_VERSION = "3"

# Subscribers evaluated at a time: memory follows this, not the snapshot (100M
# subscribers fit a 24 GiB machine). At 10M, ranges of 2M were faster than 4M (24-27 s
# against 29-32 s): the first range, read before anything overlaps, is smaller, and
# per-range event counting stays in cache.
DEFAULT_RANGE_ROWS = 2_000_000


def range_rows() -> int:
    """`SEGMENTS_RANGE_ROWS`, or the default."""
    text = os.environ.get("SEGMENTS_RANGE_ROWS", "")
    try:
        value = int(text.replace("_", "")) if text.strip() else DEFAULT_RANGE_ROWS
    except ValueError:
        raise UserError(f"SEGMENTS_RANGE_ROWS must be a whole number of rows, got {text!r}") from None
    if value < 1:
        raise UserError(f"SEGMENTS_RANGE_ROWS must be at least 1, got {value}")
    return value


@dataclass(frozen=True)
class IngestLimits:
    """What one landing file may hold; a file over a limit is rejected whole with
    its reason, so ingest memory stays bounded whatever lands. Defaults leave
    room for a 100M-subscriber snapshot; each can be set in `SegmentsResource`
    or with the environment variable named beside it."""

    max_file_bytes: int = 64 << 30  # SEGMENTS_MAX_FILE_BYTES: decompressed size of one file
    max_columns: int = 1_000  # SEGMENTS_MAX_COLUMNS: columns (CSV header, JSONL keys, Parquet schema)
    max_record_bytes: int = 16 << 20  # SEGMENTS_MAX_RECORD_BYTES: one CSV record or JSONL line


def ingest_limits(**given: int | None) -> IngestLimits:
    """The limits given (None: not given), else the environment's, else the defaults."""
    values: dict[str, int] = {}
    for item in fields(IngestLimits):
        value = given.get(item.name)
        env = f"SEGMENTS_{item.name.upper()}"  # the name beside each limit above
        if value is None:
            text = os.environ.get(env, "").strip()
            if not text:
                continue
            try:
                value = int(text.replace("_", ""))
            except ValueError:
                raise UserError(f"{env} must be a whole number, got {text!r}") from None
        if value < 1:
            raise UserError(f"ingest limit {item.name} must be at least 1, got {value}")
        values[item.name] = value
    return IngestLimits(**values)
