"""Evaluate every segment of a project on Apache Spark, from the same sqlglot AST.

The query is the DuckDB engine's `flags_query` (pipelines/engine/duckdb_engine.py),
the very same tree, rendered with the project's Spark dialect
(pipelines/segments/dialects.py: `ARRAYS_OVERLAP` for list overlap, ...):

1. `event_counts`: one scan of `events`, grouped by subscriber, one
   `COUNT(*) FILTER (WHERE ...)` per distinct (event, window, where);
2. `base`: subscribers LEFT JOIN event_counts, counts defaulting to 0;
3. `wave_0`, `wave_1`, ...: one boolean column per segment (`segment:KEY`),
   later waves reading earlier waves' columns (segment filters);
4. unpivot in one pass: `EXPLODE(ARRAY(CASE WHEN segment:a THEN 'a' END, ...))`,
   keep the non-NULL entries. (A `UNION ALL` of one filter per segment, as in
   DuckDB, would make Spark recompute the flags once per segment.)

Everything runs in the JVM as Spark SQL: no Python UDFs, so executors need no
Python packages. The driver collects the membership as Arrow and sorts it
(binary string order, like every engine). `evaluate_flags_spark` returns the
wide shape instead (pipelines/core/flags.py: subscriber_id sorted, one
boolean column per segment in key order) for callers that keep flags.

Inputs, either of:

- `pa.Table` (what `evaluate()` and the Dagster job pass): conformed to the
  catalog like for the other engines, then handed to Spark with an explicit
  schema (timestamps as `TIMESTAMP_NTZ`, naive UTC);
- `ParquetSource` (`evaluate_spark(..., subscribers=ParquetSource.of(path), ...)`
  or `lake_sources(paths, as_of)`): Spark reads the files itself, on the
  executors, from local paths or object-store URLs (`s3a://`, `gs://`,
  `abfss://`). This is the path for data larger than the driver's memory.
  Columns are selected and typed by the catalog: a missing optional column is
  NULL, a stored type other than the catalog's is converted with `TRY_CAST`
  (a value that does not convert is NULL). The lake's files already carry the
  catalog's types; a column declared after its data was ingested is better read
  through the Arrow path, which applies the ingest rules.

Each evaluation registers its temporary views under fresh names (and drops
them), so concurrent evaluations on the shared session never see each other's
data; the rendered SQL still says `subscribers` and `events` (as aliases).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import pyarrow as pa
from sqlglot import exp

from ..core.schemas import MEMBERSHIP, conform, membership_table
from ..errors import UserError
from ..lake.snapshots import event_part_files, snapshot_at_or_before
from ..segments.dialects import render
from ..segments.fields import REQUIRED_EVENT_FIELDS
from ..segments.model import Project
from ..segments.plan import EvaluationPlan, build_plan, naive_utc, segment_column
from ..segments.to_sql import EVENTS, SUBSCRIBERS, field_column, string_literal
from .duckdb_engine import flags_query
from .spark_session import get_spark_session, require_pyspark

# Spark SQL type of each catalog field type (timestamps are naive UTC: TIMESTAMP_NTZ).
SPARK_TYPES: dict[str, str] = {
    "string": "STRING",
    "integer": "BIGINT",
    "number": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP_NTZ",
    "list": "ARRAY<STRING>",
}


@dataclass(frozen=True)
class ParquetSource:
    """Parquet files, folders or globs for Spark to read itself (local or object store)."""

    paths: tuple[str, ...]

    @classmethod
    def of(cls, *paths: str | os.PathLike[str]) -> ParquetSource:
        return cls(tuple(os.fspath(p) for p in paths))


Input: TypeAlias = pa.Table | ParquetSource


def lake_sources(paths: Any, as_of: datetime) -> tuple[ParquetSource, ParquetSource]:
    """The lake files a run at `as_of` evaluates: the latest snapshot at or before
    `as_of`, and every ingested event file (already de-duplicated by event_id at
    ingest; events after `as_of` are never counted). `paths` is a settings.Paths."""
    snapshot = snapshot_at_or_before(paths, naive_utc(as_of))
    if snapshot is None:
        raise UserError(f"no subscriber snapshot at or before {naive_utc(as_of).isoformat()} in {paths.lake}")
    return ParquetSource.of(snapshot.file), ParquetSource.of(*event_part_files(paths))


def spark_type(field_type: str) -> exp.DataType:
    return exp.DataType.build(SPARK_TYPES[field_type], dialect="spark")


def _struct(fields: dict[str, str], names: Sequence[str]) -> Any:
    """A pyspark StructType for `names`, typed by the catalog."""
    from pyspark.sql import types as T

    scalar = {
        "string": T.StringType(),
        "integer": T.LongType(),
        "number": T.DoubleType(),
        "boolean": T.BooleanType(),
        "date": T.DateType(),
        "timestamp": T.TimestampNTZType(),
        "list": T.ArrayType(T.StringType(), containsNull=True),
    }
    return T.StructType([T.StructField(name, scalar[fields[name]], nullable=True) for name in names])


class _Views:
    """Temporary views of one evaluation, under names no other evaluation uses."""

    def __init__(self, spark: Any):
        self.spark = spark
        self.prefix = f"segments_{uuid.uuid4().hex[:16]}"
        self.created: list[str] = []

    def register(self, frame: Any, role: str) -> str:
        name = f"{self.prefix}_{role}"
        frame.createOrReplaceTempView(name)
        self.created.append(name)
        return name

    def drop(self) -> None:
        for name in reversed(self.created):
            with contextlib.suppress(Exception):  # best effort: the session may be gone already
                self.spark.catalog.dropTempView(name)
        self.created.clear()


def _render(tree: exp.Expr) -> str:
    return render(tree, "spark")


def _bind(tree: exp.Expr, views: dict[str, str]) -> exp.Expr:
    """Point the relations `subscribers`/`events` at this evaluation's views, keeping
    the original names as aliases (the columns stay `subscribers.x`, `events.y`)."""

    def swap(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Table) and not node.args.get("db") and not node.alias and node.name in views:
            return exp.Table(this=exp.to_identifier(views[node.name]),
                             alias=exp.TableAlias(this=exp.to_identifier(node.name)))
        return node

    return tree.transform(swap, copy=True)


def _arrow_frame(spark: Any, table: pa.Table, fields: dict[str, str], names: list[str], required: Iterable[str],
                 schema: pa.Schema, what: str) -> Any:
    table = conform(table, schema, names, required, what=what)
    # pyspark 4 (classic) stops reading a table's batches at the first 0-row one:
    # every later row would be lost. Lake reads give such chunks (an empty events
    # file, a file with no events in an id range or before as_of), so drop them.
    table = pa.Table.from_batches([b for b in table.to_batches() if b.num_rows], schema=table.schema)
    return spark.createDataFrame(table, schema=_struct(fields, names))


def _parquet_frame(spark: Any, views: _Views, source: ParquetSource, fields: dict[str, str], names: list[str],
                   required: Iterable[str], what: str) -> Any:
    """Read `source` and select `names`, typed by the catalog (see the module docstring)."""
    if not source.paths:
        return spark.createDataFrame([], schema=_struct(fields, names))
    raw = spark.read.option("mergeSchema", "true").parquet(*source.paths)
    stored = {f.name: f.dataType.simpleString() for f in raw.schema.fields}
    raw_view = views.register(raw, f"{what}_raw")
    columns: list[exp.Expr] = []
    for name in names:
        target = spark_type(fields[name])
        if name not in stored:
            if name in set(required):
                raise UserError(f"{what} Parquet files {list(source.paths)} have no '{name}' column")
            value: exp.Expr = exp.cast(exp.Null(), target)
        elif stored[name] == target.sql(dialect="spark").lower():
            value = field_column(name)
        else:
            value = exp.TryCast(this=field_column(name), to=target, safe=True)
        columns.append(exp.alias_(value, exp.to_identifier(name, quoted=True), copy=False))
    return spark.sql(_render(exp.select(*columns).from_(exp.table_(raw_view), copy=False)))


def _frame(spark: Any, views: _Views, source: Input, fields: dict[str, str], names: list[str],
           required: Iterable[str], schema: pa.Schema, what: str) -> Any:
    if isinstance(source, ParquetSource):
        return _parquet_frame(spark, views, source, fields, names, required, what)
    if isinstance(source, pa.Table):
        return _arrow_frame(spark, source, fields, names, required, schema, what)
    raise TypeError(f"{what} input must be a pyarrow Table or a ParquetSource, got {type(source).__name__}")


def membership_query(flags_view: str, keys: list[str]) -> exp.Select:
    """(segment, subscriber_id) for every true flag, in ONE pass over the flags."""
    labels = exp.Array(expressions=[
        exp.Case(ifs=[exp.If(this=exp.column(segment_column(key)), true=string_literal(key))]) for key in keys
    ])
    exploded = exp.select(
        exp.alias_(exp.Explode(this=labels), "segment", copy=False), exp.column("subscriber_id")
    ).from_(exp.table_(flags_view), copy=False)
    return (
        exp.select(exp.column("segment"), exp.column("subscriber_id"))
        .from_(exp.Subquery(this=exploded, alias=exp.TableAlias(this=exp.to_identifier("members"))), copy=False)
        .where(exp.Is(this=exp.column("segment"), expression=exp.Not(this=exp.Null())), copy=False)
    )


def spark_flags_sql(project: Project, plan: EvaluationPlan, views: dict[str, str] | None = None) -> str:
    """The Spark SQL text of the flags query (relations renamed per `views`)."""
    tree: exp.Expr = flags_query(project, plan)
    if views:
        tree = _bind(tree, views)
    return _render(tree)


def _collect(project: Project, plan: EvaluationPlan, subscribers: Input, events: Input, spark: Any,
             query: Callable[[str], exp.Select]) -> pa.Table:
    """Register the inputs, build the flags view, run `query(flags_view)`, collect as Arrow."""
    require_pyspark()
    spark = spark if spark is not None else get_spark_session()
    catalog = project.catalog
    views = _Views(spark)
    try:
        names = {SUBSCRIBERS: views.register(
            _frame(spark, views, subscribers, catalog.subscriber, plan.subscriber_fields, ["subscriber_id"],
                   catalog.subscriber_schema(), "subscriber"), SUBSCRIBERS)}
        if plan.aggregates:
            names[EVENTS] = views.register(
                _frame(spark, views, events, catalog.event, plan.event_fields, REQUIRED_EVENT_FIELDS,
                       catalog.event_schema(), "event"), EVENTS)
        flags = views.register(spark.sql(spark_flags_sql(project, plan, names)), "flags")
        return spark.sql(_render(query(flags))).toArrow()
    finally:
        views.drop()


def evaluate_spark(project: Project, subscribers: Input, events: Input, as_of: datetime,
                   spark: Any = None) -> pa.Table:
    """Membership of every segment, computed by Spark: (segment, subscriber_id),
    sorted, the same table as every other engine's.

    `spark`: a SparkSession to use; default the process's (spark_session.py).
    """
    plan = build_plan(project, naive_utc(as_of))
    if not plan.segment_keys:
        return MEMBERSHIP.empty_table()
    result = _collect(project, plan, subscribers, events, spark,
                      lambda flags: membership_query(flags, plan.segment_keys))
    result = result.sort_by([("segment", "ascending"), ("subscriber_id", "ascending")])
    return membership_table(result)


def evaluate_flags_spark(project: Project, subscribers: Input, events: Input, as_of: datetime,
                         spark: Any = None) -> pa.Table:
    """Membership in the wide shape (pipelines/core/flags.py): `subscriber_id`,
    sorted (binary string order), then one boolean `segment:KEY` column per
    segment in key order, never NULL."""
    plan = build_plan(project, naive_utc(as_of))
    keys = sorted(plan.segment_keys)
    columns = ["subscriber_id", *(segment_column(k) for k in keys)]
    if not keys and isinstance(subscribers, pa.Table):  # nothing for Spark to do
        result = conform(subscribers, project.catalog.subscriber_schema(), ["subscriber_id"], ["subscriber_id"],
                         what="subscriber")
    else:
        result = _collect(project, plan, subscribers, events, spark,
                          lambda flags: exp.select(*(exp.column(c) for c in columns)).from_(exp.table_(flags)))
    result = result.sort_by([("subscriber_id", "ascending")]).combine_chunks()
    schema = pa.schema([("subscriber_id", pa.string()), *((c, pa.bool_()) for c in columns[1:])])
    return result.select(columns).cast(schema)
