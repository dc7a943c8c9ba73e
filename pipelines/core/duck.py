"""DuckDB connections for work on Arrow tables and files.

`duckdb.connect()` builds a new database each time (tens of milliseconds), so
`scratch_connection` is a `cursor()` on one process-wide in-memory database: nearly
free, thread-safe, with its own registrations and temp tables (dropped on close).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

import duckdb
from sqlglot import exp

_guard = threading.Lock()
_database: duckdb.DuckDBPyConnection | None = None


def scratch_connection() -> duckdb.DuckDBPyConnection:
    """A new connection to the shared in-memory database; close it when done (`with`)."""
    global _database
    with _guard:
        if _database is None:
            _database = duckdb.connect(":memory:")
        return _database.cursor()


def bounded_connection(memory_limit: str, spill_dir: Path | str) -> duckdb.DuckDBPyConnection:
    """A database of its own for one large job: past `memory_limit` DuckDB spills
    to `spill_dir` (created if missing) instead of taking the machine's memory."""
    Path(spill_dir).mkdir(parents=True, exist_ok=True)
    return duckdb.connect(config={"memory_limit": memory_limit, "temp_directory": str(spill_dir)})


def parquet_scan(files: Iterable[Path | str], *, union_by_name: bool = False) -> exp.Expr:
    """`read_parquet([...])` over exactly these files, for a FROM clause. Never with hive
    partitioning: DuckDB would otherwise make a column of every `name=value` folder in
    the path (the lake's `snapshot_date=...`, or one in the data folder's own path),
    replacing the file's column of the same name."""
    options = [exp.EQ(this=exp.var("hive_partitioning"), expression=exp.false())]
    if union_by_name:
        options.append(exp.EQ(this=exp.var("union_by_name"), expression=exp.true()))
    listing = exp.Array(expressions=[exp.Literal.string(str(f)) for f in files])
    return exp.func("read_parquet", listing, *options)
