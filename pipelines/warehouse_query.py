"""Read-only access to the published warehouse, for `segments query` and `segments list`."""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
from rich.console import Console
from rich.table import Column

from .cli_render import escape, print_table
from .core.settings import Paths
from .errors import UserError
from .publish.catalog import open_warehouse as open_published

# Statement types (DuckDB's own parser) that only read. EXPLAIN is allowed only
# over one of these (EXPLAIN ANALYZE executes its statement).
_READ_ONLY_TYPES = {"SELECT", "PRAGMA"}
# PRAGMA also imports databases and changes settings: only these, which only
# describe the catalog, may run (and never as `PRAGMA name = value`).
_READ_ONLY_PRAGMAS = {
    "database_list", "database_size", "show", "show_databases", "show_tables", "show_tables_expanded",
    "table_info", "storage_info", "version", "platform", "functions", "collations", "user_agent",
}
_PRAGMA_NAME = re.compile(r"\s*PRAGMA\s+(\w+)\s*(\(|;|\Z)", re.IGNORECASE)
_EXPLAIN_PREFIX = re.compile(r"\s*EXPLAIN\s+(ANALYZE\s+)?(\([^()]*\)\s*)?", re.IGNORECASE)
_ALLOWED = "SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN or a describing PRAGMA"


@contextmanager
def open_warehouse(paths: Paths, *, required: bool = True):
    """A read-only connection to the published warehouse (None when there is none and it is not
    `required`), attached into a fresh in-memory database: never a stale catalog from DuckDB's cache."""
    if not Path(paths.warehouse).exists():
        if not required:
            yield None
            return
        raise UserError(f"no warehouse at {paths.warehouse}: run `segments run` (or `make demo`) first")
    try:
        con = open_published(paths)  # re-points the views first if the data folder moved
    except duckdb.Error as error:
        raise UserError(f"cannot open {paths.warehouse}: {str(error).splitlines()[0]}") from None
    try:
        yield con
    finally:
        con.close()


def _statement_types(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[str, str]]:
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as error:
        raise UserError(f"query: {str(error).splitlines()[0]}") from None
    return [(_kind(s), s.query) for s in statements]


def _kind(statement) -> str:
    try:
        return str(statement.type).rsplit(".", 1)[-1]
    except ValueError:  # a type the Python API has no name for (UPDATE EXTENSIONS)
        words = statement.query.split()
        return words[0].upper() if words else "UNKNOWN"


def _reads_only(con: duckdb.DuckDBPyConnection, kind: str, text: str) -> tuple[bool, str]:
    """(whether the statement only reads, the kind to name when it does not)."""
    if kind == "SELECT":
        return True, kind
    if kind == "PRAGMA":
        match = _PRAGMA_NAME.match(text)
        name = match.group(1).lower() if match else ""
        if name in _READ_ONLY_PRAGMAS:
            return True, kind
        # IMPORT DATABASE parses as PRAGMA import_database
        return False, "IMPORT" if name == "import_database" or text.lstrip().upper().startswith("IMPORT") \
            else f"PRAGMA {name}".strip()
    if kind == "EXPLAIN":
        match = _EXPLAIN_PREFIX.match(text)
        inner = text[match.end():] if match else ""
        inner_types = _statement_types(con, inner) if inner.strip() else []
        if len(inner_types) == 1:
            return _reads_only(con, *inner_types[0])
    return False, kind


def check_read_only(sql: str) -> None:
    """Refuse anything but reading statements, named by DuckDB's own parser. The connection that runs
    the query is locked as well (publish.catalog): this check gives the one-line reason first."""
    con = duckdb.connect()
    try:
        statements = _statement_types(con, sql)
        if not statements:
            raise UserError("query: no SQL statement given")
        for kind, text in statements:
            reads, named = _reads_only(con, kind, text)
            if not reads:
                raise UserError(
                    f"query: {named} statements are refused: the warehouse is read-only; use {_ALLOWED}"
                )
    finally:
        con.close()


def run_query(paths: Paths, sql: str) -> tuple[list[str], list[tuple]]:
    check_read_only(sql)
    with open_warehouse(paths) as con:
        try:
            cursor = con.execute(sql)
        except duckdb.Error as error:
            raise UserError(f"query: {str(error).splitlines()[0]}") from None
        if cursor.description is None:
            return [], []
        columns = [d[0] for d in cursor.description]
        return columns, cursor.fetchall()


def _text(value) -> str:
    """A value as one CSV/table cell: lists joined with '|' (as in landing files)."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return "|".join(_text(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


def _json_value(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _json_safe(value):
    """NaN and infinity have no JSON form: they print as null (inside lists and structs too)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


def print_result(columns: list[str], rows: list[tuple], fmt: str, console: Console) -> None:
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_text(v) for v in row] for row in rows)
    elif fmt == "json":
        records = [dict(zip(columns, _json_safe(row), strict=True)) for row in rows]
        print(json.dumps(records, indent=2, default=_json_value, ensure_ascii=False, allow_nan=False))
    else:
        # A pipe gets whole values, one row a line (grep, less -S), not a table folded to 80 columns.
        wide = console if console.is_terminal else Console(file=console.file, width=100_000, highlight=False)
        print_table(wide, [["NULL" if v is None else escape(_text(v)) for v in row] for row in rows],
                    *(Column(escape(c), overflow="fold") for c in columns))
        console.print(f"{len(rows):,} row(s)")
