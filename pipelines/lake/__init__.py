"""Landing files -> typed Parquet lake, with ledger, quarantine and rejection (no Dagster here)."""

from .ingest import IngestReport, Rejection, ingest_landing
from .snapshots import (
    SnapshotInfo,
    list_snapshots,
    quarantine_table,
    read_events,
    read_snapshot,
    rejected_files,
    snapshot_at_or_before,
)

__all__ = [
    "IngestReport",
    "Rejection",
    "SnapshotInfo",
    "ingest_landing",
    "list_snapshots",
    "quarantine_table",
    "read_events",
    "read_snapshot",
    "rejected_files",
    "snapshot_at_or_before",
]
