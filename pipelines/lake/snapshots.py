"""Read the lake back: snapshots, events and quarantine.

Only files the ledger records are read. Tables come back typed by the *current*
catalog: catalog columns first, in catalog order (a field missing from a file is
a typed NULL column), then undeclared columns as text. A column declared after it
was ingested is converted by the ingest rules (a value that does not fit is NULL).

`as_of` values may be naive (meaning UTC) or time-zone aware (converted to UTC).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlglot import exp

from ..core import schemas
from ..core.duck import parquet_scan, scratch_connection
from ..core.schemas import conform
from ..core.settings import Paths
from ..errors import UserError
from ..segments.fields import FieldCatalog, arrow_type
from ..segments.utc import naive_utc
from .ledger import INGESTED, Ledger
from .textparse import coerce_leniently


@dataclass(frozen=True)
class SnapshotInfo:
    snapshot_at: datetime  # the time in the landing file name (naive UTC)
    file: Path  # the lake Parquet file
    source: str  # landing file name
    rows: int
    sha256: str  # of the landing file content


def list_snapshots(paths: Paths) -> list[SnapshotInfo]:
    """Every ingested snapshot, oldest first."""
    ledger = Ledger(paths)
    infos = [SnapshotInfo(snapshot_at=e.file_time, file=ledger.lake_file(e.part), source=e.file, rows=e.rows,
                          sha256=e.sha256)
             for e in ledger.entries("subscribers", INGESTED) if e.part and e.file_time]
    return sorted(infos, key=lambda info: (info.snapshot_at, info.source))


def dropped_subscribers(previous: SnapshotInfo, current: SnapshotInfo) -> int:
    """How many subscribers of `previous` are not in `current` (DuckDB reads only the ids)."""
    current_ids = exp.select("subscriber_id").from_(parquet_scan([current.file]))
    kept = exp.column("subscriber_id").isin(query=current_ids)
    # ids are never NULL: NOT IN is a plain anti-join
    query = exp.select("count(*)").from_(parquet_scan([previous.file])).where(kept.not_())
    con = scratch_connection()
    try:
        return int(con.execute(query.sql(dialect="duckdb")).fetchall()[0][0])
    finally:
        con.close()


def snapshot_at_or_before(paths: Paths, as_of: datetime) -> SnapshotInfo | None:
    """The latest snapshot whose time is <= as_of, or None."""
    limit = naive_utc(as_of)
    chosen = [info for info in list_snapshots(paths) if info.snapshot_at <= limit]
    return chosen[-1] if chosen else None


@dataclass(frozen=True)
class IdRange:
    """A run of a sorted snapshot's row groups holding ids `low` <= id < `high` (None: unbounded)."""

    row_groups: tuple[int, ...]
    low: str | None
    high: str | None
    rows: int


def snapshot_ranges(info: SnapshotInfo, max_rows: int) -> list[IdRange]:
    """The snapshot cut into id ranges of about `max_rows` rows, along row groups (snapshots
    are stored sorted by subscriber_id); one range when the row groups are not in id order."""
    metadata = pq.ParquetFile(info.file).metadata
    whole = [IdRange(tuple(range(metadata.num_row_groups)), None, None, metadata.num_rows)]
    if metadata.num_rows <= max_rows or metadata.num_row_groups < 2:
        return whole
    position = metadata.schema.to_arrow_schema().get_field_index("subscriber_id")
    bounds = []
    for g in range(metadata.num_row_groups):
        stats = metadata.row_group(g).column(position).statistics
        if stats is None or not stats.has_min_max or not getattr(stats, "is_min_value_exact", True):
            return whole
        bounds.append((stats.min, stats.max, metadata.row_group(g).num_rows))
    if any(bounds[g][0] <= bounds[g - 1][1] for g in range(1, len(bounds))):
        return whole
    ranges: list[IdRange] = []
    start, rows = 0, 0
    for g, (low, _, count) in enumerate(bounds):
        if g > start and rows + count > max_rows:  # the range ends before the ids of group g
            ranges.append(IdRange(tuple(range(start, g)), bounds[start][0] if ranges else None, low, rows))
            start, rows = g, 0
        rows += count
    ranges.append(IdRange(tuple(range(start, len(bounds))), bounds[start][0] if ranges else None, None, rows))
    return ranges


def _existing(files: list[Path]) -> list[Path]:
    for file in files:
        if not file.is_file():
            raise UserError(f"{file}: lake file listed in the ingest ledger is missing")
    return files


def _read(file: Path, filters: pc.Expression | None = None, columns: list[str] | None = None,
          dictionaries: list[str] | None = None, row_groups: tuple[int, ...] | None = None) -> pa.Table:
    """One lake file; the string columns named in `dictionaries` read as Arrow dictionaries."""
    schema = pq.read_schema(_existing([file])[0])
    if columns is not None:  # only those the file has; _typed adds the missing ones as NULL
        columns = [c for c in columns if c in schema.names]
    dictionaries = [c for c in dictionaries or () if c in schema.names and pa.types.is_string(schema.field(c).type)]
    if row_groups is not None:
        return pq.ParquetFile(file, read_dictionary=dictionaries or None).read_row_groups(
            list(row_groups), columns=columns)
    # partitioning=None: the snapshot_date=... folder is layout, not a column.
    return pq.read_table(file, filters=filters, partitioning=None, columns=columns,
                         read_dictionary=dictionaries or None)


_DICTIONARY_PAGES = {"PLAIN_DICTIONARY", "RLE_DICTIONARY"}
_LEVELS = {"RLE", "BIT_PACKED"}


def _dictionary_encoded(metadata: pq.FileMetaData) -> set[str]:
    """Top-level columns dictionary-encoded in every row group (no fallback to plain pages)."""
    groups = [metadata.row_group(g) for g in range(metadata.num_row_groups)]
    chunks = [group.column(i) for group in groups for i in range(group.num_columns)]
    plain = {chunk.path_in_schema for chunk in chunks
             if not set(chunk.encodings) & _DICTIONARY_PAGES or not set(chunk.encodings) <= _DICTIONARY_PAGES | _LEVELS}
    return {chunk.path_in_schema for chunk in chunks if "." not in chunk.path_in_schema} - plain


def _as_dictionaries(files: list[Path], fields: dict[str, str], wanted: list[str] | None) -> list[str]:
    """Which of the `wanted` string columns to read as dictionaries, decided ONCE for
    all `files`, so every file's table has the same Arrow types and they concatenate.

    Reading a plain-encoded column as a dictionary hashes every value, and the writer's
    choice differs from file to file (DuckDB writes a 1-row file plain, and falls back to
    plain pages for many distinct values): a dictionary when such files hold half the rows."""
    wanted = [c for c in wanted or () if fields.get(c) == "string"]
    if not wanted:
        return []
    stored: dict[str, int] = dict.fromkeys(wanted, 0)
    total = 0
    for file in _existing(files):
        metadata = pq.ParquetFile(file).metadata
        total += metadata.num_rows
        for name in _dictionary_encoded(metadata) & set(wanted):
            stored[name] += metadata.num_rows
    return [c for c in wanted if 2 * stored[c] >= total]


def _typed(table: pa.Table, fields: dict[str, str], only: list[str] | None = None,
           dictionaries: Collection[str] = ()) -> pa.Table:
    """`table` typed by the catalog `fields` (undeclared columns as text), converting a column
    stored with another type by the ingest rules. `dictionaries` are dictionary<int32, string>
    whatever the file: the type of a column never depends on the file it came from."""
    if only is None:
        only = [*fields, *(name for name in table.column_names if name not in fields)]
    kinds = {name: fields.get(name, "string") for name in only}
    schema = pa.schema([(name, arrow_type(kind)) for name, kind in kinds.items()])
    table = conform(table, schema, required=(), what="lake file", dictionaries=dictionaries,
                    cast=lambda column, name: coerce_leniently(column, kinds[name]))
    for i, name in enumerate(table.column_names):
        if name in dictionaries and not pa.types.is_dictionary(table.schema.field(i).type):
            table = table.set_column(i, name, table.column(i).dictionary_encode())
    return table


def read_snapshot(info: SnapshotInfo, catalog: FieldCatalog, columns: list[str] | None = None,
                  dictionaries: list[str] | None = None, id_range: IdRange | None = None) -> pa.Table:
    """The snapshot typed by `catalog`; only `columns` (in that order) and the rows of `id_range`
    when given. String `dictionaries` come back dictionary-encoded: much faster to read, and
    the engines evaluate filters once per distinct value anyway."""
    only = list(dict.fromkeys(columns)) if columns is not None else None
    dictionaries = _as_dictionaries([info.file], catalog.subscriber, dictionaries)
    row_groups = id_range.row_groups if id_range is not None else None
    table = _read(info.file, columns=only, dictionaries=dictionaries, row_groups=row_groups)
    return _typed(table, catalog.subscriber, only, dictionaries)


def event_part_files(paths: Paths) -> list[Path]:
    """The lake's event files (immutable, named by source hash), as the ledger lists them."""
    ledger = Ledger(paths)
    return [ledger.lake_file(e.part) for e in ledger.entries("events", INGESTED) if e.part]


def read_events(paths: Paths, catalog: FieldCatalog, as_of: datetime | None = None,
                columns: list[str] | None = None, dictionaries: list[str] | None = None,
                id_range: IdRange | None = None) -> pa.Table:
    """All ingested events (each event_id once), those with occurred_at <= as_of if given;
    the rest as for `read_snapshot` (event files are sorted by subscriber_id too)."""
    conditions = []
    if as_of is not None:
        conditions.append(pc.field("occurred_at") <= pa.scalar(naive_utc(as_of), pa.timestamp("us")))
    if id_range is not None and id_range.low is not None:
        conditions.append(pc.field("subscriber_id") >= pa.scalar(id_range.low, pa.string()))
    if id_range is not None and id_range.high is not None:
        conditions.append(pc.field("subscriber_id") < pa.scalar(id_range.high, pa.string()))
    filters = functools.reduce(operator.and_, conditions) if conditions else None
    only = list(dict.fromkeys(columns)) if columns is not None else None
    files = event_part_files(paths)
    dictionaries = _as_dictionaries(files, catalog.event, dictionaries)
    tables = [_typed(_read(file, filters, only, dictionaries), catalog.event, only, dictionaries) for file in files]
    # Undeclared columns differ between files: those a file lacks are NULL in its rows.
    return pa.concat_tables(tables, promote_options="default") if tables else _typed(pa.table({}), catalog.event, only)


def quarantine_table(paths: Paths) -> pa.Table:
    """Every quarantined row so far: file, row_number, reason, raw (in ingest order, then row number)."""
    ledger = Ledger(paths)  # (the held_* columns are read by lake/suppressions.py)
    tables = [_read(ledger.lake_file(e.quarantine), columns=schemas.QUARANTINE.names).cast(schemas.QUARANTINE)
              for e in ledger.entries(status=INGESTED) if e.quarantine]
    return pa.concat_tables(tables) if tables else schemas.QUARANTINE.empty_table()


def read_rows(files: list[Path], fields: dict[str, str], columns: list[str], ids: pa.Array,
              as_of: datetime | None = None) -> pa.Table:
    """`columns` of the rows of subscribers `ids` in `files` (events: up to `as_of`), typed like
    `read_snapshot`: DuckDB materializes only matching rows, far cheaper for a few percent of ids."""
    stored: set[str] = set()
    for file in _existing(files):
        stored |= set(pq.read_schema(file).names)
    present = [c for c in dict.fromkeys(columns) if c in stored]
    source = parquet_scan(files, union_by_name=True)
    wanted: exp.Expr = exp.select("subscriber_id").from_("wanted_ids")
    condition: exp.Expr = exp.column("subscriber_id").isin(query=wanted)
    if as_of is not None:
        moment = exp.cast(exp.Literal.string(naive_utc(as_of).isoformat(sep=" ")), exp.DataType.build("TIMESTAMP"))
        condition = exp.and_(condition, exp.LTE(this=exp.column("occurred_at"), expression=moment))
    query = exp.select(*(exp.column(exp.to_identifier(c, quoted=True)) for c in present)).from_(source).where(
        condition)
    con = scratch_connection()
    try:
        con.register("wanted_ids", pa.table({"subscriber_id": ids}))
        table = con.sql(query.sql(dialect="duckdb")).to_arrow_table() if files else pa.table({})
    finally:
        con.close()
    return _typed(table, fields, list(dict.fromkeys(columns)))
