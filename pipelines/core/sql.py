"""Names and values in DuckDB statements written as text.

Statements that take no bound parameters (ATTACH, COPY ... TO, a file list in
FROM) still never paste a value: sqlglot renders the literal or identifier, so
a quote or backslash in a path or column name is data, not SQL.
"""

from __future__ import annotations

from sqlglot import exp


def string(value: str) -> str:
    """A DuckDB string literal: `'it''s'`."""
    return exp.Literal.string(value).sql("duckdb")


def identifier(name: str) -> str:
    """A quoted DuckDB identifier (a double quote inside is doubled)."""
    return exp.to_identifier(name, quoted=True).sql("duckdb")
