"""Cheap DuckDB connections for in-memory work on Arrow tables.

`duckdb.connect()` builds a new database each time (tens of milliseconds);
`cursor()` on one process-wide in-memory database is nearly free and still
gives each caller its own registrations and temp tables, and is safe to use
from several threads.
"""

from __future__ import annotations

import threading

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
