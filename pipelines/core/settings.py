"""Paths and environment: the only module that reads `os.environ`.

Two roots (data-contract.md): definitions (`--defs`, env `SEGMENTS_DEFS`,
default `./segment_defs`) and data (`--data`, env `SEGMENTS_DATA`, default
`./data`). Everything the pipeline reads and writes lives below the data root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from ..errors import UserError


@dataclass(frozen=True)
class Paths:
    defs: Path
    data: Path

    def __post_init__(self) -> None:
        # Accept plain strings too; every property below joins paths.
        object.__setattr__(self, "defs", Path(self.defs))
        object.__setattr__(self, "data", Path(self.data))

    # Inputs
    @property
    def landing(self) -> Path:
        return self.data / "landing"

    @property
    def landing_subscribers(self) -> Path:
        return self.landing / "subscribers"

    @property
    def landing_events(self) -> Path:
        return self.landing / "events"

    # The typed Parquet lake, the ingest ledger, quarantine and rejected files
    @property
    def lake(self) -> Path:
        return self.data / "lake"

    @property
    def archive(self) -> Path:
        return self.data / "archive"

    @property
    def rejected(self) -> Path:
        return self.data / "rejected"

    # Published state
    @property
    def published(self) -> Path:
        return self.data / "published"

    @property
    def warehouse(self) -> Path:
        return self.data / "warehouse.duckdb"

    @property
    def lock_file(self) -> Path:
        return self.data / ".run.lock"


def resolve_paths(defs: str | os.PathLike | None = None, data: str | os.PathLike | None = None) -> Paths:
    """Explicit arguments win over the environment, which wins over the defaults."""
    defs_dir = Path(defs or os.environ.get("SEGMENTS_DEFS") or "segment_defs")
    data_dir = Path(data or os.environ.get("SEGMENTS_DATA") or "data")
    # Kept as the user gave them, so messages show familiar paths; callers that
    # need absolute paths (warehouse views) resolve them.
    return Paths(defs=defs_dir, data=data_dir)


def env_flag(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


# Subscribers evaluated at a time. A run over a larger snapshot evaluates it one id
# range after another, so memory follows this, not the snapshot (100M subscribers
# fit a 24 GiB machine). At 10M, ranges of 2M evaluated faster than ranges of 4M
# (24-27 s against 29-32 s, same machine and hour): the first range, read before
# anything overlaps, is smaller, and per-range event counting stays in cache.
# At 1M, smaller ranges won nothing measurable.
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


_LIMIT_ENV = {"max_file_bytes": "SEGMENTS_MAX_FILE_BYTES", "max_columns": "SEGMENTS_MAX_COLUMNS",
              "max_record_bytes": "SEGMENTS_MAX_RECORD_BYTES"}


def ingest_limits(**given: int | None) -> IngestLimits:
    """The limits given (None: not given), else the environment's, else the defaults."""
    values: dict[str, int] = {}
    for item in fields(IngestLimits):
        value = given.get(item.name)
        if value is None:
            text = os.environ.get(_LIMIT_ENV[item.name], "").strip()
            if not text:
                continue
            try:
                value = int(text.replace("_", ""))
            except ValueError:
                raise UserError(f"{_LIMIT_ENV[item.name]} must be a whole number, got {text!r}") from None
        if value < 1:
            raise UserError(f"ingest limit {item.name} must be at least 1, got {value}")
        values[item.name] = value
    return IngestLimits(**values)
