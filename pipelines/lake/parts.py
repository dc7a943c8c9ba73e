"""Stage normalized batches on disk, then settle duplicates and write the lake file with DuckDB.

Staging keeps memory bounded: each typed batch is appended to temporary Parquet
files. Duplicates need the whole file, so DuckDB settles them afterwards,
spilling to disk under its memory limit instead of holding a 10M-row snapshot.

Lake files are zstd Parquet with row groups of ROW_GROUP_ROWS rows: large
enough for fast parallel scans that skip by min/max, small enough to bound the
writer's memory. Snapshot and event rows are sorted by `subscriber_id`, so a run
that evaluates one range of subscribers reads only the row groups of its range.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ..core.duck import parquet_scan
from ..core.files import remove_path, replace_durably, temp_sibling
from ..core.sql import identifier, string
from ..segments.fields import arrow_type
from .columns import ROW_COLUMN, TableSpec
from .normalize import QUARANTINE_SCHEMA, Normalized

ROW_GROUP_ROWS = 512 * 1024
DUCKDB_MEMORY_LIMIT = "1GB"


def _scan(files: list[Path]) -> str:
    return parquet_scan(files, union_by_name=True).sql("duckdb")


@dataclass
class Staging:
    """Normalized batches of one landing file, spilled to temporary Parquet files."""

    folder: Path
    good_files: list[Path] = field(default_factory=list)
    quarantine_files: list[Path] = field(default_factory=list)
    good_rows: int = 0
    extras: list[str] = field(default_factory=list)
    _good: pq.ParquetWriter | None = None
    _quarantine: pq.ParquetWriter | None = None

    def add(self, batch: Normalized) -> None:
        self.extras += [name for name in batch.extras if name not in self.extras]
        if batch.good.num_rows:
            # JSONL chunks may differ in their extra columns: a new schema starts a new file.
            if self._good is None or self._good.schema != batch.good.schema:
                self._good = self._roll(self._good, self.good_files, "good", batch.good.schema)
            self._good.write_table(batch.good)
            self.good_rows += batch.good.num_rows
        self.add_quarantine(batch.quarantine)

    def add_quarantine(self, table: pa.Table) -> None:
        """Quarantined rows, also those found bad after staging (superseded duplicates)."""
        if table.num_rows:
            if self._quarantine is None:
                self._quarantine = self._roll(None, self.quarantine_files, "quarantine", QUARANTINE_SCHEMA)
            self._quarantine.write_table(table)

    def _roll(self, current: pq.ParquetWriter | None, files: list[Path], stem: str,
              schema: pa.Schema) -> pq.ParquetWriter:
        if current is not None:
            current.close()
        self.folder.mkdir(parents=True, exist_ok=True)
        files.append(self.folder / f"{stem}-{len(files):05d}.parquet")
        return pq.ParquetWriter(files[-1], schema, compression="lz4")

    def close(self) -> None:
        for writer in (self._good, self._quarantine):
            if writer is not None:
                writer.close()
        self._good = self._quarantine = None


def write_empty(spec: TableSpec, extras: list[str], target: Path) -> None:
    """The lake file of a source without good rows: the columns alone."""
    schema = pa.schema([*((name, arrow_type(t)) for name, t in spec.fields.items()),
                        *((name, pa.string()) for name in extras)])
    temp = temp_sibling(target)
    pq.write_table(schema.empty_table(), temp, compression="zstd")
    replace_durably(temp, target)


def _copy_to(con: duckdb.DuckDBPyConnection, query: str, target: Path) -> int:
    """Write a query's rows to `target` atomically; return the row count."""
    temp = temp_sibling(target)
    try:
        con.execute(f"COPY ({query}) TO {string(str(temp))} "
                    f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_ROWS})")
        rows = pq.ParquetFile(temp).metadata.num_rows
        replace_durably(temp, target)
    except BaseException:
        remove_path(temp)
        raise
    return rows


def write_snapshot(con: duckdb.DuckDBPyConnection, staging: Staging, spec: TableSpec,
                   target: Path) -> tuple[int, pa.Table]:
    """Write the snapshot (last row per subscriber_id wins); return rows written and the
    superseded rows: row_number (increasing), key, winner (its row_number), status, email,
    as Arrow, not Python lists (millions of identical rows must not bloat ingest memory)."""
    status, email = identifier("status"), identifier("email")
    row, key = identifier(ROW_COLUMN), identifier(spec.key)
    staged = _scan(staging.good_files)
    # Finding the keys that repeat is one cheap aggregate; the window only runs over their rows.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE superseded AS
        WITH repeated AS (SELECT {key} AS key FROM {staged} GROUP BY ALL HAVING count(*) > 1),
        candidates AS (SELECT {row} AS row_number, {key} AS key, {status} AS status, {email} AS email
                       FROM {staged} WHERE {key} IN (SELECT key FROM repeated))
        SELECT row_number, key, winner, status, email FROM (
            SELECT row_number, key, status, email, max(row_number) OVER (PARTITION BY key) AS winner
            FROM candidates
        ) WHERE row_number < winner""")
    losers = con.sql("SELECT row_number, key, winner, status, email FROM superseded ORDER BY row_number"
                     ).to_arrow_table()
    # Stored in subscriber_id (byte) order, the order every run reads: sorting once here saves
    # a sort of the whole snapshot in each run (5 s at 10M rows, measured).
    anti_join = f"ANTI JOIN superseded d ON s.{row} = d.row_number" if losers.num_rows else ""
    rows = _copy_to(con, f"SELECT s.* EXCLUDE ({row}) FROM {staged} s {anti_join} ORDER BY s.{key}", target)
    con.execute("DROP TABLE superseded")
    return rows, losers.combine_chunks()


def write_row_hashes(con: duckdb.DuckDBPyConnection, snapshot_part: Path, target: Path) -> int:
    """One 64-bit hash of each whole snapshot row, in subscriber_id order: an incremental run
    finds changed rows by joining two (id, hash) files (engine/incremental.py). The hash is
    of the row as JSON: DuckDB's hash of a row itself gives a NULL list, an empty list and a
    list holding one NULL the same hash, and JSON tells them apart."""
    source = _scan([snapshot_part])
    return _copy_to(con, f"SELECT s.{identifier('subscriber_id')}, hash(to_json(s)) AS row_hash FROM {source} s", target)


def write_events(con: duckdb.DuckDBPyConnection, staging: Staging, spec: TableSpec, target: Path,
                 earlier_parts: list[Path]) -> int:
    """Write the events whose event_id is new (first row per event_id in the file wins)."""
    row, key = identifier(ROW_COLUMN), identifier(spec.key)
    staged = _scan(staging.good_files)
    seen = ""
    if earlier_parts:
        seen = f"ANTI JOIN (SELECT DISTINCT {key} AS seen_id FROM {_scan(earlier_parts)}) p ON s.{key} = p.seen_id"
    return _copy_to(con, f"""
        SELECT s.* EXCLUDE ({row}) FROM {staged} s {seen}
        QUALIFY row_number() OVER (PARTITION BY s.{key} ORDER BY s.{row}) = 1
        ORDER BY s.{identifier('subscriber_id')}, s.{identifier('occurred_at')}, s.{row}""", target)


def write_suppressions(con: duckdb.DuckDBPyConnection, staging: Staging, target: Path) -> int:
    """Write a suppression file's rows as they came (every address counts, repeats are harmless)."""
    row = identifier(ROW_COLUMN)
    return _copy_to(con, f"SELECT s.* EXCLUDE ({row}) FROM {_scan(staging.good_files)} s ORDER BY s.{row}", target)


def write_quarantine(con: duckdb.DuckDBPyConnection, staging: Staging, file_name: str, target: Path) -> int:
    if not staging.quarantine_files:
        return 0
    return _copy_to(con, f"""
        SELECT {string(file_name)} AS file, row_number, reason, raw, held_subscriber_id, held_email, held_status
        FROM {_scan(staging.quarantine_files)}
        ORDER BY row_number""", target)
