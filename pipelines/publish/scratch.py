"""DuckDB connections for work on Arrow tables and files.

`scratch_connection` is the cheap one, for small in-memory work.

`duckdb.connect()` builds a new database each time (tens of milliseconds);
`cursor()` on one process-wide in-memory database is nearly free and still
gives each caller its own registrations and temp tables, and is safe to use
from several threads.
"""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb

_guard = threading.Lock()
_database: duckdb.DuckDBPyConnection | None = None


def scratch_connection() -> duckdb.DuckDBPyConnection:
    """A new connection to the shared in-memory database; close it when done."""
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
