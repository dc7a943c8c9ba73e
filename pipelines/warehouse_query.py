"""Read-only access to the published warehouse, for `segments query` and `segments list`."""

from __future__ import annotations

import csv
import json
import sys
from contextlib import contextmanager

import duckdb
import sqlglot
from rich.console import Console
from rich.table import Table
from sqlglot import exp

from .errors import UserError
from .settings import Paths

# Statements that only read. Anything else is refused before it reaches DuckDB.
_READ_ONLY = (exp.Query, exp.Describe, exp.Show, exp.Pragma)


@contextmanager
def open_warehouse(paths: Paths):
    if not paths.warehouse.exists():
        raise UserError(f"no warehouse at {paths.warehouse}: run `segments run` (or `make demo`) first")
    con = duckdb.connect(str(paths.warehouse), read_only=True)
    try:
        yield con
    finally:
        con.close()


def check_read_only(sql: str) -> None:
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except sqlglot.errors.ParseError as error:
        raise UserError(f"query: cannot parse the SQL: {str(error).splitlines()[0]}") from None
    if not statements:
        raise UserError("query: no SQL statement given")
    for statement in statements:
        if not isinstance(statement, _READ_ONLY):
            kind = statement.key.upper()
            raise UserError(f"query: {kind} statements are refused; the warehouse is read-only (use SELECT)")


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


def print_result(columns: list[str], rows: list[tuple], fmt: str, console: Console) -> None:
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
    elif fmt == "json":
        print(json.dumps([dict(zip(columns, row, strict=True)) for row in rows], indent=2, default=str,
                         ensure_ascii=False))
    else:
        table = Table()
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*("NULL" if v is None else str(v) for v in row))
        console.print(table)
        console.print(f"{len(rows):,} row(s)")


def segment_listing(paths: Paths) -> list[dict]:
    """Current segments with members, change in the last run, and that run's as_of."""
    with open_warehouse(paths) as con:
        rows = con.execute(
            """
            WITH last_run AS (
                SELECT run_id, as_of FROM segment_sizes ORDER BY as_of DESC LIMIT 1
            )
            SELECT s.segment, s.name, s.members,
                   z.entered - z.exited AS change, lr.as_of AS last_run_as_of
            FROM segments s
            CROSS JOIN last_run lr
            LEFT JOIN segment_sizes z ON z.segment = s.segment AND z.run_id = lr.run_id
            ORDER BY s.segment
            """
        ).fetchall()
    keys = ("segment", "name", "members", "change", "last_run_as_of")
    return [dict(zip(keys, row, strict=True)) for row in rows]
