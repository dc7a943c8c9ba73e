"""Arrow schemas of the published relations, in one place.

Every Parquet file of a version is written with one of these schemas, so an
empty relation still has typed columns and readers never see a column change
type between runs. Timestamps are naive microsecond values meaning UTC.
"""

from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("us")
STR = pa.string()
STR_LIST = pa.list_(pa.string())

MEMBERSHIP = pa.schema([("segment", STR), ("subscriber_id", STR)])

HISTORY = pa.schema([
    ("segment", STR),
    ("subscriber_id", STR),
    ("valid_from", TS),
    ("valid_to", TS),  # NULL while still a member
    ("entered_run_id", STR),
    ("exited_run_id", STR),
])

CHANGES = pa.schema([
    ("run_id", STR),
    ("as_of", TS),
    ("segment", STR),
    ("subscriber_id", STR),
    ("change", STR),  # 'entered' | 'exited'
])

SIZES = pa.schema([
    ("run_id", STR),
    ("as_of", TS),
    ("segment", STR),
    ("members", pa.int64()),
    ("entered", pa.int64()),
    ("exited", pa.int64()),
])

RUNS = pa.schema([
    ("run_id", STR),
    ("as_of", TS),
    ("snapshot", STR),
    ("snapshot_rows", pa.int64()),
    ("started_at", TS),
    ("finished_at", TS),
    ("status", STR),  # success | replaced | failed | held | ...
    ("message", STR),
    ("fingerprint", STR),
    ("version", STR),
])

SEGMENTS = pa.schema([
    ("segment", STR),
    ("name", STR),
    ("description", STR),
    ("definition_sha256", STR),
    ("members", pa.int64()),
    ("entered", pa.int64()),
    ("exited", pa.int64()),
    ("depends_on", STR_LIST),
    ("sql", STR),
])

AUDIENCES = pa.schema([
    ("audience", STR),
    ("name", STR),
    ("include", STR_LIST),
    ("exclude", STR_LIST),
    ("fields", STR_LIST),
    ("definition_sha256", STR),
    ("recipients", pa.int64()),
    ("holdout_percent", pa.float64()),  # NULL: no holdout
    ("holdout_salt", STR),
])

# The published `suppressions` relation: one row per suppressed address (trimmed,
# lower case); source is 'snapshot' or the suppression file's name.
SUPPRESSIONS = pa.schema([("email", STR), ("reason", STR), ("source", STR), ("suppressed_at", TS)])
# The suppression list as the lake holds it (every row of every suppression file).
SUPPRESSION_LIST = SUPPRESSIONS
# Quarantined rows of a snapshot that still suppress their subscriber and address.
HELD_ROWS = pa.schema([("subscriber_id", STR), ("email", STR), ("status", STR), ("reason", STR)])

QUARANTINE = pa.schema([("file", STR), ("row_number", pa.int64()), ("reason", STR), ("raw", STR)])


def conform(table: pa.Table | None, schema: pa.Schema, *, what: str) -> pa.Table:
    """`table` with exactly `schema`'s columns, in order and cast to its types.

    Extra columns are dropped; a missing column is an error (it would silently
    publish NULLs), except when the table is None (an empty relation).
    """
    if table is None:
        return schema.empty_table()
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(missing)}")
    return table.select(schema.names).cast(schema)
