"""Evaluate every segment on Apache Spark, from the same sqlglot AST rendered in the
project's Spark dialect (docs/scale-out.md, "How it works"). Plain Spark SQL, no
Python UDFs: executors need no Python packages.

Each evaluation registers its temporary views under fresh names (and drops
them), so concurrent evaluations on the shared session never see each other's
data; the rendered SQL still says `subscribers` and `events` (as aliases).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import pyarrow as pa
from sqlglot import exp

from ..core.schemas import MEMBERSHIP, conform, membership_table
from ..segments.dialects import render
from ..segments.fields import REQUIRED_EVENT_FIELDS
from ..segments.model import EventFilter, Project
from ..segments.plan import EvaluationPlan, build_plan, event_count_column, segment_column
from ..segments.to_sql import (
    EVENT_COUNTS,
    EVENTS,
    SUBSCRIBERS,
    event_counts_cte,
    field_column,
    segment_predicate,
    string_literal,
    with_cte,
)
from ..segments.utc import naive_utc
from .spark_session import get_spark_session

# Spark SQL type of each catalog field type (timestamps are naive UTC: TIMESTAMP_NTZ).
_SPARK_TYPES = {"string": "STRING", "integer": "BIGINT", "number": "DOUBLE", "boolean": "BOOLEAN",
                "date": "DATE", "timestamp": "TIMESTAMP_NTZ", "list": "ARRAY<STRING>"}


def _frame(spark: Any, table: pa.Table, fields: dict[str, str], names: list[str], required: Iterable[str],
           schema: pa.Schema, what: str) -> Any:
    """`table` conformed to the catalog, as a Spark DataFrame typed by the catalog."""
    table = conform(table, schema, names, required, what=what)
    # pyspark 4 (classic) stops reading a table's batches at the first 0-row one:
    # every later row would be lost. Lake reads give such chunks (an empty events
    # file, a file with no events in an id range or before as_of), so drop them.
    table = pa.Table.from_batches([b for b in table.to_batches() if b.num_rows], schema=table.schema)
    ddl = ", ".join(f"{exp.to_identifier(name, quoted=True).sql('spark')} {_SPARK_TYPES[fields[name]]}"
                    for name in names)
    return spark.createDataFrame(table, schema=ddl)


def flags_query(project: Project, plan: EvaluationPlan) -> exp.Select:
    """subscriber_id plus one boolean column per segment (`segment:KEY`): event counts
    grouped by subscriber, the subscribers LEFT JOIN them (0 when absent), then one
    CTE per dependency wave, later waves reading earlier waves' columns."""
    catalog = project.catalog
    base = exp.select(*(field_column(name, table=SUBSCRIBERS) for name in plan.subscriber_fields)).from_(
        exp.table_(SUBSCRIBERS), copy=False)
    query = exp.select(exp.column("subscriber_id"),
                       *(exp.column(segment_column(k)) for k in plan.segment_keys))
    if plan.aggregates:
        counts = event_counts_cte(plan.aggregates, catalog, plan.as_of, event_count_column)
        query = with_cte(query, EVENT_COUNTS, counts)
        for key in plan.aggregates:
            count = exp.Coalesce(this=exp.column(event_count_column(key), table=EVENT_COUNTS),
                                 expressions=[exp.Literal.number(0)])
            base = base.select(exp.alias_(count, event_count_column(key), copy=False), copy=False)
        on = exp.EQ(this=exp.column("subscriber_id", table=EVENT_COUNTS),
                    expression=exp.column("subscriber_id", table=SUBSCRIBERS))
        base = base.join(exp.table_(EVENT_COUNTS), on=on, join_type="left", copy=False)
    query = with_cte(query, "base", base)

    def event_count(f: EventFilter) -> exp.Expr:
        return exp.column(event_count_column(f.aggregate_key()))

    def member_of(key: str) -> exp.Expr:
        return exp.column(segment_column(key))  # computed in an earlier wave

    previous = "base"
    for index, wave in enumerate(plan.waves):
        columns = [
            exp.alias_(segment_predicate(project.segments[key], catalog, plan.as_of, event_count, member_of),
                       segment_column(key), copy=False)
            for key in wave
        ]
        name = f"wave_{index}"
        wave_select = exp.select(exp.Star(), *columns).from_(exp.table_(previous), copy=False)
        query = with_cte(query, name, wave_select)
        previous = name
    return query.from_(exp.table_(previous), copy=False)


def membership_query(flags_view: str, keys: list[str]) -> exp.Select:
    """(segment, subscriber_id) for every true flag, in ONE pass over the flags
    (a `UNION ALL` per segment would make Spark recompute the flags per segment)."""
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
    """The Spark SQL text of the flags query, the relations `subscribers`/`events`
    pointed at `views` under their original names as aliases (the columns stay
    `subscribers.x`, `events.y`)."""
    views = views or {}

    def bind(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Table) and not node.args.get("db") and not node.alias and node.name in views:
            return exp.Table(this=exp.to_identifier(views[node.name]),
                             alias=exp.TableAlias(this=exp.to_identifier(node.name)))
        return node

    return render(flags_query(project, plan).transform(bind, copy=False), "spark")


def evaluate_spark(project: Project, subscribers: pa.Table, events: pa.Table, as_of: datetime) -> pa.Table:
    """Membership of every segment (engine.evaluate), computed by Spark on the
    process's session (spark_session.py)."""
    plan = build_plan(project, naive_utc(as_of))
    if not plan.segment_keys:
        return MEMBERSHIP.empty_table()
    spark = get_spark_session()
    catalog = project.catalog
    prefix = f"segments_{uuid.uuid4().hex[:16]}"  # names no other evaluation uses
    views: list[str] = []

    def register(frame: Any, role: str) -> str:
        views.append(f"{prefix}_{role}")
        frame.createOrReplaceTempView(views[-1])
        return views[-1]

    try:
        names = {SUBSCRIBERS: register(
            _frame(spark, subscribers, catalog.subscriber, plan.subscriber_fields, ["subscriber_id"],
                   catalog.subscriber_schema(), "subscriber"), SUBSCRIBERS)}
        if plan.aggregates:
            names[EVENTS] = register(
                _frame(spark, events, catalog.event, plan.event_fields, REQUIRED_EVENT_FIELDS,
                       catalog.event_schema(), "event"), EVENTS)
        flags = register(spark.sql(spark_flags_sql(project, plan, names)), "flags")
        result = spark.sql(render(membership_query(flags, plan.segment_keys), "spark")).toArrow()
    finally:
        for name in reversed(views):
            with contextlib.suppress(Exception):  # best effort: the session may be gone already
                spark.catalog.dropTempView(name)
    result = result.sort_by([("segment", "ascending"), ("subscriber_id", "ascending")])
    return membership_table(result)
