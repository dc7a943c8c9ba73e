"""Landing files -> typed Parquet lake, with ledger, quarantine and rejection (no Dagster here)."""

from .ingest import Rejection, ingest_landing
from .snapshots import list_snapshots, quarantine_table, read_events, read_snapshot, snapshot_at_or_before

__all__ = ["Rejection", "ingest_landing", "list_snapshots", "quarantine_table", "read_events", "read_snapshot",
           "snapshot_at_or_before"]
