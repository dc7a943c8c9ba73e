"""Arrow schemas of the published relations in one place, and `conform` to them.

Every Parquet file of a version is written with one of these schemas, so an
empty relation still has typed columns and readers never see a column change
type between runs. Timestamps are naive microsecond values meaning UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

import pyarrow as pa

from ..errors import UserError

TS = pa.timestamp("us")
STR = pa.string()
STR_LIST = pa.list_(pa.string())

# Columns every recipient row has; the audiences' `fields` go before `run_id`.
FIXED_COLUMNS = ("audience", "subscriber_id", "email", "group", "run_id")
# The recipients' groups: who to mail, and who is held out of an audience.
SEND, HOLDOUT = "send", "holdout"
# Recipient columns with one value per row (never worth a Parquet dictionary).
UNIQUE_COLUMNS = ("subscriber_id", "email")

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


def conform(table: pa.Table | None, schema: pa.Schema, columns: Iterable[str] | None = None,
            required: Iterable[str] | None = None, *, what: str, dictionaries: Collection[str] = (),
            cast: Callable[[pa.ChunkedArray, str], pa.Array] | None = None) -> pa.Table:
    """`table` reduced to `columns` of `schema` (None: all), in order, each cast to its
    type; extra columns are dropped. A missing column is an error when `required` names
    it (None: all are, as a missing one would silently publish NULLs), else all NULL; a
    None table is an empty relation. A column named in `dictionaries` stays encoded when
    its values have the right type (engine/encoded.py reads its dictionary). `cast(column,
    name)` converts a column of another type; by default a failed cast is a UserError."""
    names = list(dict.fromkeys(schema.names if columns is None else columns))
    needed = set(names if required is None else required)
    if table is None:
        return pa.schema([schema.field(name) for name in names]).empty_table()
    arrays, fields = [], []
    for name in names:
        target = schema.field(name)
        if name not in table.column_names:
            if name in needed:
                raise UserError(f"{what} table has no '{name}' column")
            column = pa.chunked_array([pa.nulls(table.num_rows, target.type)], target.type)
        else:
            column = table.column(name)
            if name in dictionaries and pa.types.is_dictionary(column.type) \
                    and column.type.value_type == target.type:
                target = pa.field(name, column.type)
            elif column.type != target.type and cast is not None:
                column = cast(column, name)
            elif column.type != target.type:
                try:
                    column = column.cast(target.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                    raise UserError(f"{what} column '{name}' has type {column.type}, expected {target.type}") from err
        arrays.append(column)
        fields.append(target)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def decode_dictionaries(table: pa.Table) -> pa.Table:
    """`table` with its dictionary-encoded columns as plain values."""
    for index, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(index, pa.field(field.name, field.type.value_type),
                                     table.column(index).cast(field.type.value_type))
    return table


def membership_table(table: pa.Table) -> pa.Table:
    """(segment, subscriber_id) with the published types; engines sort (binary
    string order, i.e. by code point, on every engine)."""
    return table.select(["segment", "subscriber_id"]).cast(MEMBERSHIP).combine_chunks()
