"""The sqlglot vocabulary of the SQL compiler (literals, case folding), and the two
dialects it renders to. Values only ever enter a tree through the literal builders
below: a definition can change literal values, never a query's shape.

- DuckDB: the stock generator is right as is (`LAMBDA x : ...`, the only lambda
  DuckDB 2.0 accepts; `&&` and `@>` for list overlap and "contains all").
- Spark: `LOWER` follows a newer Unicode than case.py's table, so it becomes
  `TRANSLATE(x, <table>)`; list overlap becomes `ARRAYS_OVERLAP(a, b)` and
  "a contains all of b" `SIZE(ARRAY_EXCEPT(b, a)) = 0`. Timestamp literals are
  `TIMESTAMP_NTZ` (naive UTC, like the lake), and a Spark engine must run with
  `spark.sql.session.timeZone=UTC` so `CAST(ts AS DATE)` is the UTC date.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from sqlglot import exp

from ..errors import UserError
from .case import FOLD_FROM, FOLD_TO

DIALECT_NAMES = ("duckdb", "spark")

DATE = exp.DataType.build("DATE")
# Naive timestamps meaning UTC: DuckDB TIMESTAMP, Spark TIMESTAMP_NTZ.
TIMESTAMP = exp.DataType.build("TIMESTAMPNTZ")
_DOUBLE = exp.DataType.build("DOUBLE")


def cast(expression: exp.Expr, to: exp.DataType) -> exp.Cast:
    """CAST(expression AS to) with a fresh type node (`exp.cast` deep-copies `to`)."""
    return exp.Cast(this=expression, to=exp.DataType(this=to.this, nested=False))


def string_literal(value: str) -> exp.Literal:
    return exp.Literal.string(value)


def number_literal(value: int | float) -> exp.Expr:
    """Integers stay exact BIGINT literals. Floats become `CAST('<repr>' AS DOUBLE)`:
    a bare `0.1` is a DECIMAL in DuckDB, and DECIMAL -> DOUBLE can round
    differently from parsing the shortest repr, which round-trips exactly."""
    if isinstance(value, int):
        return exp.Literal.number(str(value))
    return cast(exp.Literal.string(repr(float(value))), _DOUBLE)


def boolean_literal(value: bool) -> exp.Boolean:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, got {value!r}")
    return exp.Boolean(this=value)


def date_literal(value: date) -> exp.Expr:
    return cast(exp.Literal.string(value.isoformat()), DATE)


def timestamp_literal(value: datetime) -> exp.Expr:
    return cast(exp.Literal.string(value.isoformat(sep=" ")), TIMESTAMP)


LITERALS: dict[str, Callable[[Any], exp.Expr]] = {
    "string": string_literal, "integer": number_literal, "number": number_literal, "boolean": boolean_literal,
    "date": date_literal, "timestamp": timestamp_literal}


def fold_sql(e: exp.Expr) -> exp.Expr:
    """`e` case-folded (case.py). DuckDB's LOWER follows the table but for two characters,
    fixed around it; the Spark dialect rewrites LOWER into a TRANSLATE of the table (below)."""
    before = exp.Replace(this=e, expression=exp.Literal.string("İ"), replacement=exp.Literal.string("i"))
    return exp.Replace(this=exp.Lower(this=before), expression=exp.Literal.string("ς"),
                       replacement=exp.Literal.string("σ"))


def _spark_lower(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.Lower):  # case.py's table, not the JVM's newer Unicode one
        return exp.Translate(this=node.this, from_=exp.Literal.string(FOLD_FROM), to=exp.Literal.string(FOLD_TO))
    return node


def _spark_node(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.ArrayOverlaps):
        return exp.Anonymous(this="ARRAYS_OVERLAP", expressions=[node.this, node.expression])
    if isinstance(node, exp.ArrayContainsAll):
        # `this @> expression`: every element of `expression` is in `this`.
        missing = exp.ArrayExcept(this=node.expression, expression=node.this)
        return exp.paren(exp.EQ(this=exp.ArraySize(this=missing), expression=exp.Literal.number(0)), copy=False)
    return node


def render(tree: exp.Expr, dialect: str, pretty: bool = False, copy: bool = True) -> str:
    """The text of `tree` in `dialect` (`duckdb` or `spark`)."""
    if dialect == "duckdb":
        return tree.sql(dialect="duckdb", pretty=pretty, copy=copy)
    if dialect == "spark":
        # LOWER and the two list operators Spark SQL lacks, rewritten in the tree: the
        # compiled sqlglot (`sqlglot[c]`) does not allow subclassing its generators.
        # Two passes: a replaced node's children are not visited again.
        spark = tree.transform(_spark_lower, copy=copy).transform(_spark_node, copy=False)
        return spark.sql(dialect="spark", pretty=pretty, copy=False)
    raise UserError(f"unknown SQL dialect '{dialect}' (choose one of: {', '.join(DIALECT_NAMES)})")
