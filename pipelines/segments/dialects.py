"""SQL dialects the compiler renders to, with the few fixes sqlglot's stock
generators need for our expressions.

- DuckDB: sqlglot's generator already renders lambdas as `LAMBDA x : ...`, the
  only form DuckDB 2.0 accepts (`x -> ...` is an error there), `&&` for list
  overlap and `@>` for "contains all"; the stock dialect is used as is (a test
  executes the rendered text in DuckDB).
- Spark: `&&` and `@>` are not Spark SQL. List overlap becomes
  `ARRAYS_OVERLAP(a, b)` and "a contains all of b" becomes
  `SIZE(ARRAY_EXCEPT(b, a)) = 0`.

Spark timestamps: the compiler writes timestamp literals as `TIMESTAMP_NTZ`
(naive values meaning UTC, like the lake). A Spark engine must run with
`spark.sql.session.timeZone=UTC` so `CAST(ts AS DATE)` is the UTC calendar date
even for session-local `TIMESTAMP` columns.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect, rename_func
from sqlglot.dialects.spark import Spark
from sqlglot.generators.spark import SparkGenerator

from ..errors import UserError

DIALECT_NAMES = ("duckdb", "spark")


def _spark_contains_all(self: SparkGenerator, expression: exp.ArrayContainsAll) -> str:
    # `this @> expression`: every element of `expression` is in `this`.
    missing = exp.ArrayExcept(this=expression.expression.copy(), expression=expression.this.copy())
    return self.sql(exp.paren(exp.EQ(this=exp.ArraySize(this=missing), expression=exp.Literal.number(0))))


class SegmentSparkGenerator(SparkGenerator):
    TRANSFORMS = {
        **SparkGenerator.TRANSFORMS,
        exp.ArrayOverlaps: rename_func("ARRAYS_OVERLAP"),
        exp.ArrayContainsAll: _spark_contains_all,
    }


class SegmentSpark(Spark):
    """Spark SQL as our compiled queries need it (see module docstring)."""

    Generator = SegmentSparkGenerator


def get_dialect(name: str) -> Dialect:
    """The sqlglot dialect to render a segment query in (`duckdb` or `spark`)."""
    if name == "duckdb":
        return Dialect.get_or_raise("duckdb")
    if name == "spark":
        return SegmentSpark()
    raise UserError(f"unknown SQL dialect '{name}' (choose one of: {', '.join(DIALECT_NAMES)})")
