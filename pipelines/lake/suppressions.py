"""Read what suppresses sending from the lake (data-contract.md, "Sending safely").

- The suppression list: every row of every file ever ingested from
  `landing/suppressions/` (an address, once landed, stays suppressed in every
  later run), plus quarantined rows of those files that still have an address.
- Held rows: quarantined rows of the snapshot in force whose status is not
  'active' and that still have a readable subscriber_id or email (an
  unsubscribe is never lost through quarantine; normalize.py marks them).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..core import schemas
from ..core.settings import Paths
from .ledger import INGESTED, Ledger


def _quarantine_rows(file: Path, columns: list[str]) -> pa.Table | None:
    """The quarantined rows of a file that still suppress (held_* set)."""
    table = pq.read_table(file, columns=columns, partitioning=None)
    kept = table.filter(pc.or_(pc.is_valid(table.column("held_subscriber_id")),
                               pc.is_valid(table.column("held_email"))))
    return kept if kept.num_rows else None


def read_suppression_list(paths: Paths) -> pa.Table:
    """email, reason, source (the landing file's name), suppressed_at: one row per listed row."""
    ledger = Ledger(paths)
    tables = []
    for entry in ledger.entries("suppressions", INGESTED):
        if entry.part:
            rows = pq.read_table(ledger.lake_file(entry.part), columns=["email", "reason", "suppressed_at"],
                                 partitioning=None)
            tables.append(pa.table({
                "email": rows.column("email"), "reason": rows.column("reason"),
                "source": pa.array([entry.file] * rows.num_rows, pa.string()),
                "suppressed_at": rows.column("suppressed_at"),
            }).cast(schemas.SUPPRESSION_LIST))
        if entry.quarantine:
            held = _quarantine_rows(ledger.lake_file(entry.quarantine),
                                    ["held_subscriber_id", "held_email", "reason"])
            if held is not None:
                tables.append(pa.table({
                    "email": held.column("held_email"), "reason": held.column("reason"),
                    "source": pa.array([entry.file] * held.num_rows, pa.string()),
                    "suppressed_at": pa.nulls(held.num_rows, schemas.TS),
                }).cast(schemas.SUPPRESSION_LIST))
    if not tables:
        return schemas.SUPPRESSION_LIST.empty_table()
    return pa.concat_tables(tables)


def read_held_rows(paths: Paths, snapshot_file: Path | str) -> pa.Table:
    """subscriber_id, email, status, reason of the quarantined rows of the snapshot
    whose lake file is `snapshot_file` that still suppress."""
    ledger = Ledger(paths)
    target = Path(snapshot_file).resolve()
    for entry in ledger.entries("subscribers", INGESTED):
        if entry.part and entry.quarantine and ledger.lake_file(entry.part).resolve() == target:
            held = _quarantine_rows(ledger.lake_file(entry.quarantine),
                                    ["held_subscriber_id", "held_email", "held_status", "reason", "row_number"])
            if held is None:
                break
            reasons = pc.binary_join_element_wise(
                "quarantined row ", held.column("row_number").cast(pa.string()), f" of {entry.file}: ",
                held.column("reason"), "")
            return pa.table({
                "subscriber_id": held.column("held_subscriber_id"), "email": held.column("held_email"),
                "status": held.column("held_status"), "reason": reasons,
            }).cast(schemas.HELD_ROWS)
    return schemas.HELD_ROWS.empty_table()
