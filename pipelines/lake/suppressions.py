"""Read what suppresses sending from the lake (data-contract.md, "Sending safely").

- The suppression list: every row of every suppressions file ever ingested (an
  address, once landed, stays suppressed), plus their quarantined rows with an address.
- Held rows: quarantined rows of the snapshot in force that still suppress (an
  unsubscribe is never lost through quarantine; normalize.py marks them).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..core import schemas
from ..core.schemas import conform
from ..core.settings import Paths
from .ledger import INGESTED, Ledger


def _held_rows(file: Path, columns: list[str]) -> pa.Table:
    """The quarantined rows of a file that still suppress (held_* set)."""
    table = pq.read_table(file, columns=list(dict.fromkeys([*columns, "held_status"])), partitioning=None)
    return table.filter(pc.is_valid(table.column("held_status"))).select(columns)


def read_suppression_list(paths: Paths) -> pa.Table:
    """email, reason, source (the landing file's name), suppressed_at: one row per listed row."""
    ledger = Ledger(paths)
    tables = []
    for entry in ledger.entries("suppressions", INGESTED):
        found = []
        if entry.part:
            found.append(pq.read_table(ledger.lake_file(entry.part), columns=["email", "reason", "suppressed_at"],
                                       partitioning=None))
        if entry.quarantine:
            found.append(_held_rows(ledger.lake_file(entry.quarantine), ["held_email", "reason"])
                         .rename_columns(["email", "reason"]))
        for rows in found:
            rows = rows.append_column("source", pa.array([entry.file] * rows.num_rows, pa.string()))
            tables.append(conform(rows, schemas.SUPPRESSION_LIST, required=(), what="suppressions"))
    return pa.concat_tables(tables) if tables else schemas.SUPPRESSION_LIST.empty_table()


def read_held_rows(paths: Paths, snapshot_file: Path | str) -> pa.Table:
    """subscriber_id, email, status, reason of the quarantined rows of the snapshot
    whose lake file is `snapshot_file` that still suppress."""
    ledger = Ledger(paths)
    target = Path(snapshot_file).resolve()
    for entry in ledger.entries("subscribers", INGESTED):
        if entry.part and entry.quarantine and ledger.lake_file(entry.part).resolve() == target:
            held = _held_rows(ledger.lake_file(entry.quarantine),
                              ["held_subscriber_id", "held_email", "held_status", "reason", "row_number"])
            reasons = pc.binary_join_element_wise(
                "quarantined row ", held.column("row_number").cast(pa.string()), f" of {entry.file}: ",
                held.column("reason"), "")
            return pa.table({
                "subscriber_id": held.column("held_subscriber_id"), "email": held.column("held_email"),
                "status": held.column("held_status"), "reason": reasons,
            }).cast(schemas.HELD_ROWS)
    return schemas.HELD_ROWS.empty_table()
