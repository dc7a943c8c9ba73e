"""The run log: `DATA/published/runs.jsonl`, one JSON record per line, append-only.

Failed or held runs are recorded by `run.prepare.record_failure` and show up in
the `runs` relation at the next publish, which merges the log in. Appends are
single `write` calls on an O_APPEND descriptor, so concurrent recorders never
interleave within a line and need no writer lock (a failing run may not hold
it); a torn last line (crash mid-write) is skipped when reading.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..core import schemas
from ..core.settings import Paths
from ..segments.utc import naive_utc


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    as_of: datetime
    started_at: datetime | None
    finished_at: datetime | None = None
    status: str = "success"  # published
    snapshot: str | None = None
    snapshot_rows: int | None = None
    message: str | None = None
    fingerprint: str | None = None
    version: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=datetime.isoformat, ensure_ascii=False)

    @classmethod
    def from_dict(cls, record: dict) -> RunRecord:
        values: dict[str, Any] = {k: record.get(k) for k in cls.__dataclass_fields__}
        for key in ("as_of", "started_at", "finished_at"):
            if isinstance(values[key], str):
                values[key] = naive_utc(datetime.fromisoformat(values[key]))
        return cls(**values)

    def replaced_by(self, run_id: str) -> RunRecord:
        return replace(self, status="replaced", message=f"replaced by run {run_id} (same as_of, different inputs)")


def run_log_path(paths: Paths) -> Path:
    return Path(paths.published) / "runs.jsonl"


def append_run_record(paths: Paths, record: RunRecord) -> None:
    target = run_log_path(paths)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (record.to_json() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_run_log(paths: Paths) -> list[RunRecord]:
    target = run_log_path(paths)
    if not target.exists():
        return []
    records = []
    for line in target.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            records.append(RunRecord.from_dict(json.loads(line)))
        except (ValueError, TypeError, KeyError):
            continue  # a torn line from a crash mid-append
    return records


def records_from_table(table: pa.Table) -> list[RunRecord]:
    return [RunRecord.from_dict(row) for row in schemas.conform(table, schemas.RUNS, what="runs").to_pylist()]


def merge_runs(log: list[RunRecord], published: list[RunRecord], updates: list[RunRecord]) -> pa.Table:
    """The `runs` relation: log records, overridden by the previous version's
    rows (authoritative for published runs), overridden by this publish's own
    records; ordered by start time."""
    merged = {record.run_id: record for record in [*log, *published, *updates]}
    rows = [asdict(r) for r in sorted(merged.values(),
                                      key=lambda r: (r.started_at or r.as_of or datetime.min, r.run_id))]
    return pa.Table.from_pylist(rows, schema=schemas.RUNS) if rows else schemas.RUNS.empty_table()
