"""SQL dialects the compiler renders to, with the few fixes sqlglot's stock
generators need for our expressions.

- DuckDB: sqlglot's generator already renders lambdas as `LAMBDA x : ...`, the
  only form DuckDB 2.0 accepts (`x -> ...` is an error there), `&&` for list
  overlap and `@>` for "contains all"; the stock dialect is used as is (a test
  executes the rendered text in DuckDB).
- Spark: `LOWER` follows a newer Unicode than case.py's table: it becomes
  `TRANSLATE(x, <table>)`. `&&` and `@>` are not Spark SQL. List overlap becomes
  `ARRAYS_OVERLAP(a, b)` and "a contains all of b" becomes
  `SIZE(ARRAY_EXCEPT(b, a)) = 0`.

Spark timestamps: the compiler writes timestamp literals as `TIMESTAMP_NTZ`
(naive values meaning UTC, like the lake). A Spark engine must run with
`spark.sql.session.timeZone=UTC` so `CAST(ts AS DATE)` is the UTC calendar date
even for session-local `TIMESTAMP` columns.
"""

from __future__ import annotations

from sqlglot import exp

from ..errors import UserError
from .case import FOLD_FROM, FOLD_TO

DIALECT_NAMES = ("duckdb", "spark")


def _spark_lower(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Lower):  # case.py's table, not the JVM's newer Unicode one
        return exp.Translate(this=node.this, from_=exp.Literal.string(FOLD_FROM), to=exp.Literal.string(FOLD_TO))
    return node


def _spark_node(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.ArrayOverlaps):
        return exp.Anonymous(this="ARRAYS_OVERLAP", expressions=[node.this, node.expression])
    if isinstance(node, exp.ArrayContainsAll):
        # `this @> expression`: every element of `expression` is in `this`.
        missing = exp.ArrayExcept(this=node.expression, expression=node.this)
        return exp.paren(exp.EQ(this=exp.ArraySize(this=missing), expression=exp.Literal.number(0)), copy=False)
    return node


def for_spark(tree: exp.Expression, copy: bool = True) -> exp.Expression:
    """The tree with LOWER and the two list operators Spark SQL lacks rewritten (module docstring).
    A tree rewrite rather than a generator subclass: the compiled sqlglot
    (`sqlglot[c]`) does not allow subclassing its classes."""
    # Two passes: a replaced node's children are not visited again.
    return tree.transform(_spark_lower, copy=copy).transform(_spark_node, copy=False)


def render(tree: exp.Expression, dialect: str, pretty: bool = False, copy: bool = True) -> str:
    """The text of `tree` in `dialect` (`duckdb` or `spark`)."""
    if dialect == "duckdb":
        return tree.sql(dialect="duckdb", pretty=pretty, copy=copy)
    if dialect == "spark":
        return for_spark(tree, copy=copy).sql(dialect="spark", pretty=pretty, copy=False)
    raise UserError(f"unknown SQL dialect '{dialect}' (choose one of: {', '.join(DIALECT_NAMES)})")
