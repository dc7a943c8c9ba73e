"""Evaluate every segment of a project in DuckDB, in one pass per dependency wave.

Shape of the work (each step one statement, values only as sqlglot literals):

1. `event_counts`: ONE scan of `events`, grouped by subscriber, with one
   `COUNT(*) FILTER (WHERE ...)` per distinct event aggregate of the plan.
2. `base`: subscribers LEFT JOIN event_counts, counts defaulting to 0.
3. `wave_0`, `wave_1`, ...: each adds one boolean column per segment of the
   wave (`"segment:KEY"`); later waves read earlier waves' columns. These CTEs
   chain into one query materialized as the temp table `flags`.

`flags_query` above is the plain form (the Spark engine renders it). The run
uses `evaluate_flags_duckdb`, the same statements with what measurement
showed to cost most taken out of the per-row work:

- string and tag filters are evaluated once per distinct value
  (`encoded.py`), and the queries read their boolean columns;
- event counts are aligned to the subscribers' rows outside the query, so the
  wave query is a pure projection of one table: rows keep their order, and
  the flags come out sorted by subscriber_id without a sort;
- the long shape is made from the flags by `flags.flags_to_membership`
  (per segment, a bitmap filter of the sorted ids: no sort either).
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from ..core.duck import scratch_connection
from ..core.flags import bitmap, sort_by_id
from ..core.schemas import conform, decode_dictionaries
from ..segments.fields import REQUIRED_EVENT_FIELDS
from ..segments.model import EventFilter, FieldFilter, Project
from ..segments.plan import EvaluationPlan, build_plan, event_count_column, segment_column
from ..segments.to_sql import (
    EVENT_COUNTS,
    EVENTS,
    SUBSCRIBERS,
    event_condition,
    event_counts_cte,
    field_column,
    field_predicate,
    segment_predicate,
    string_literal,
    timestamp_literal,
    two_valued,
    with_cte,
)
from .combine import EventCounts, aggregate_counts, combine_segments
from .encoded import Precomputed, ValueEvaluator, precompute

BASE = "base"

def flags_query(project: Project, plan: EvaluationPlan) -> exp.Select:
    """subscriber_id plus one boolean column per segment (`"segment:KEY"`)."""
    catalog = project.catalog
    base = exp.select(*(field_column(name, table=SUBSCRIBERS) for name in plan.subscriber_fields)).from_(
        exp.table_(SUBSCRIBERS),
        copy=False,
    )
    query = exp.select(exp.column("subscriber_id"), *(exp.column(segment_column(k)) for k in plan.segment_keys))
    if plan.aggregates:
        counts_cte = event_counts_cte(plan.aggregates, catalog, plan.as_of, event_count_column)
        query = with_cte(query, EVENT_COUNTS, counts_cte)
        for key in plan.aggregates:
            count = exp.column(event_count_column(key), table=EVENT_COUNTS)
            base = base.select(
                exp.alias_(exp.Coalesce(this=count, expressions=[exp.Literal.number(0)]), event_count_column(key), copy=False),
                copy=False,
            )
        base = base.join(
            exp.table_(EVENT_COUNTS),
            on=exp.EQ(
                this=exp.column("subscriber_id", table=EVENT_COUNTS),
                expression=exp.column("subscriber_id", table=SUBSCRIBERS),
            ),
            join_type="left",
            copy=False,
        )
    query = with_cte(query, BASE, base)

    def event_count(f: EventFilter) -> exp.Expr:
        return exp.column(event_count_column(f.aggregate_key()))

    def member_of(key: str) -> exp.Expr:
        return exp.column(segment_column(key))  # computed in an earlier wave

    previous = BASE
    for index, wave in enumerate(plan.waves):
        columns = [
            exp.alias_(
                segment_predicate(project.segments[key], catalog, plan.as_of, event_count, member_of),
                segment_column(key),
                copy=False,
            )
            for key in wave
        ]
        name = f"wave_{index}"
        wave_select = exp.select(exp.Star(), *columns).from_(exp.table_(previous), copy=False)
        query = with_cte(query, name, wave_select)
        previous = name
    return query.from_(exp.table_(previous), copy=False)


# --------------------------------------------------------------------------- the run's path: flags

_ROWS = "subscriber_rows"
_ROW = "row_number"
_VALUES = "distinct_values"
_VALUE_INDEX = "value_index"
_LEAVES = "leaf_input"


def _value_evaluator(con: duckdb.DuckDBPyConnection, as_of: datetime) -> ValueEvaluator:
    """Filters evaluated by DuckDB on a small table of distinct values (see encoded.py)."""

    def run(name: str, field_type: str, filters: list[FieldFilter], values: pa.Table) -> list[np.ndarray]:
        table = values.append_column(_VALUE_INDEX, pa.array(np.arange(values.num_rows, dtype=np.int64)))
        con.register(_VALUES, table)
        try:
            columns = [
                exp.alias_(field_predicate(f, field_type, field_column(name), as_of), f"p{i}", copy=False)
                for i, f in enumerate(filters)
            ]
            query = exp.select(*columns).from_(exp.table_(_VALUES), copy=False).order_by(
                exp.column(_VALUE_INDEX), copy=False)
            result = con.sql(query.sql(dialect="duckdb")).to_arrow_table()
        finally:
            con.unregister(_VALUES)
        return [pc.fill_null(result.column(i), False).to_numpy() for i in range(len(filters))]

    return run


def _resolver(pre: Precomputed, table: str | None = None):
    def resolve(f: FieldFilter) -> exp.Expr | None:
        name = pre.name_of(f)
        return exp.column(name, table=table) if name else None

    return resolve


def _as_flag(predicate: exp.Expr) -> exp.Expr:
    """A never-null predicate as 0/1: DuckDB hands UTINYINT columns to Arrow
    much faster than BOOLEAN ones."""
    return exp.cast(predicate, exp.DataType.build("UTINYINT", dialect="duckdb"), copy=False)


def _field_leaves(con: duckdb.DuckDBPyConnection, subscribers: pa.Table, filters: list[FieldFilter],
                  catalog, as_of: datetime) -> dict[FieldFilter, pa.Array]:
    """Each field filter not evaluated per distinct value, over every row, in one query."""
    if not filters:
        return {}
    n = subscribers.num_rows
    con.register(_LEAVES, subscribers.append_column(_ROW, pa.array(np.arange(n, dtype=np.int64))))
    try:
        columns = [
            exp.alias_(_as_flag(field_predicate(f, catalog.subscriber[f.field], field_column(f.field), as_of)),
                       f"p{i}", copy=False)
            for i, f in enumerate(filters)
        ]
        query = exp.select(exp.column(_ROW), *columns).from_(exp.table_(_LEAVES), copy=False)
        result = con.sql(query.sql(dialect="duckdb")).to_arrow_table()
    finally:
        con.unregister(_LEAVES)
    rows = result.column(_ROW).to_numpy()
    order = None if np.array_equal(rows, np.arange(n)) else np.argsort(rows)  # a projection keeps row order
    out = {}
    for i, f in enumerate(filters):
        values = result.column(f"p{i}").to_numpy() != 0
        out[f] = bitmap(values if order is None else values[order])
    return out


def _event_counts(con: duckdb.DuckDBPyConnection, project: Project, plan: EvaluationPlan,
                  subscribers: pa.Table, events: pa.Table, start: int, encode: bool = True) -> EventCounts:
    """Per aggregate (plan.aggregates), the event count of each subscriber row.

    DuckDB joins each event to its subscriber's row and says, as bits of one
    integer per 64 aggregates, which aggregates the event counts for (the
    compiled `event_condition`s); numpy adds the bits up per row.
    """
    catalog = project.catalog
    events = conform(events, catalog.event_schema(), plan.event_fields, REQUIRED_EVENT_FIELDS, what="event",
                     dictionaries=plan.event_fields)
    where = [w for f in plan.aggregates.values() for w in f.where]
    pre = precompute(events, catalog.event, where, _value_evaluator(con, plan.as_of), start=start) if encode \
        else Precomputed()
    n = subscribers.num_rows
    con.register(EVENTS, pre.append_to(events))
    con.register(_ROWS, pa.table({"subscriber_id": subscribers.column("subscriber_id"),
                                  _ROW: pa.array(np.arange(n, dtype=np.int64))}))
    try:
        def event_column(name: str) -> exp.Expr:
            return field_column(name, table=EVENTS)

        ubigint = exp.DataType.build("UBIGINT", dialect="duckdb")
        resolve = _resolver(pre, EVENTS)
        aggregates = list(plan.aggregates.items())
        words = []
        for first in range(0, len(aggregates), 64):
            bits: list[exp.Expr] = []
            for k, (_key, f) in enumerate(aggregates[first:first + 64]):
                condition = two_valued(event_condition(f, catalog, plan.as_of, event_column, resolve))
                bit = exp.cast(condition, ubigint, copy=False)
                bits.append(bit if k == 0 else exp.BitwiseLeftShift(this=bit, expression=exp.Literal.number(k)))
            word: exp.Expr = bits[0]
            for shifted in bits[1:]:
                word = exp.BitwiseOr(this=word, expression=shifted)
            words.append(exp.alias_(word, f"w{first // 64}", copy=False))
        names = sorted({f.event for f in plan.aggregates.values()})
        prune = exp.and_(
            exp.LTE(this=event_column("occurred_at"), expression=timestamp_literal(plan.as_of)),
            exp.In(this=event_column("event"), expressions=[string_literal(x) for x in names]),
            copy=False,
        )
        query = (
            exp.select(exp.column(_ROW, table=_ROWS), *words)
            .from_(exp.table_(EVENTS), copy=False)
            .join(exp.table_(_ROWS), on=exp.EQ(this=exp.column("subscriber_id", table=_ROWS),
                                                expression=event_column("subscriber_id")), copy=False)
            .where(prune, copy=False)
        )
        result = con.sql(query.sql(dialect="duckdb")).to_arrow_table()
    finally:
        con.unregister(_ROWS)
        con.unregister(EVENTS)
    rows = result.column(_ROW).to_numpy()
    masks = [result.column(f"w{i}").to_numpy() for i in range(len(words))]
    return aggregate_counts(rows, masks, [key for key, _f in aggregates])


def evaluate_flags_duckdb(project: Project, subscribers: pa.Table, events: pa.Table, as_of: datetime,
                          *, encode: bool = True) -> pa.Table:
    """Flags (subscriber_id sorted, one `segment:KEY` column per segment in key
    order); see the module docstring. `encode=False` skips the per-distinct-value
    evaluation (to measure what it wins)."""
    plan = build_plan(project, as_of)
    catalog = project.catalog
    subscribers = sort_by_id(conform(subscribers, catalog.subscriber_schema(), plan.subscriber_fields,
                                     ["subscriber_id"], what="subscriber",
                                     dictionaries=plan.subscriber_fields))
    if not plan.segment_keys:
        return decode_dictionaries(subscribers.select(["subscriber_id"]))
    n = subscribers.num_rows
    con = scratch_connection()
    try:
        filters = list(dict.fromkeys(f for key in plan.segment_keys for f in project.segments[key].field_filters()))
        pre = Precomputed()
        if encode:
            pre = precompute(subscribers, catalog.subscriber, filters, _value_evaluator(con, plan.as_of))
        leaves = _field_leaves(con, subscribers, [f for f in filters if pre.name_of(f) is None], catalog,
                               plan.as_of)
        counts = _event_counts(con, project, plan, subscribers, events, len(pre.columns), encode) \
            if plan.aggregates else EventCounts.none()
    finally:
        con.close()

    def field_result(f: FieldFilter) -> pa.Array:
        name = pre.name_of(f)
        return pre.columns[name] if name else leaves[f]

    results = combine_segments(project, plan, n, field_result, counts)
    keys = sorted(plan.segment_keys)
    ids = decode_dictionaries(subscribers.select(["subscriber_id"])).column("subscriber_id")
    return pa.Table.from_arrays([ids, *(results[k] for k in keys)],
                                names=["subscriber_id", *(segment_column(k) for k in keys)])
