"""Evaluate every segment with DuckDB evaluating the leaves of the definitions
(`combine.py` does the rest), one statement per kind of leaf, values only as
sqlglot literals: field filters in one projection of the subscribers' rows, event
aggregates in one scan of the events joined to them, each event telling as bits
which aggregates it counts for; numpy adds the bits up per row (no group-by, no sort).
"""

from __future__ import annotations

import functools
from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from ..core.duck import scratch_connection
from ..core.flags import bitmap
from ..segments.fields import FieldCatalog
from ..segments.model import FieldFilter, Project
from ..segments.plan import EvaluationPlan
from ..segments.to_sql import (
    EVENTS,
    event_condition,
    field_column,
    field_predicate,
    string_literal,
    timestamp_literal,
    two_valued,
)
from .combine import EventCounts, aggregate_counts, evaluate_leaves
from .encoded import Precomputed

_ROWS = "subscriber_rows"
_ROW = "row_number"
_VALUE_INDEX = "value_index"
_INPUT = "leaf_input"


class _DuckDBLeaves:
    """The leaves of the definitions (combine.Leaves), each kind in one DuckDB query."""

    def __init__(self, con: duckdb.DuckDBPyConnection, catalog: FieldCatalog, as_of: datetime):
        self.con, self.catalog, self.as_of = con, catalog, as_of

    def _run(self, query: exp.Select, tables: dict[str, pa.Table]) -> pa.Table:
        for name, table in tables.items():
            self.con.register(name, table)
        try:
            return self.con.sql(query.sql(dialect="duckdb")).to_arrow_table()
        finally:
            for name in tables:
                self.con.unregister(name)

    def values(self, name: str, field_type: str, filters: list[FieldFilter],
               values: pa.Table) -> list[np.ndarray]:
        table = values.append_column(_VALUE_INDEX, pa.array(np.arange(values.num_rows, dtype=np.int64)))
        columns = [
            exp.alias_(field_predicate(f, field_type, field_column(name), self.as_of), f"p{i}", copy=False)
            for i, f in enumerate(filters)
        ]
        query = exp.select(*columns).from_(exp.table_(_INPUT), copy=False).order_by(
            exp.column(_VALUE_INDEX), copy=False)
        result = self._run(query, {_INPUT: table})
        return [pc.fill_null(result.column(i), False).to_numpy() for i in range(len(filters))]

    def fields(self, subscribers: pa.Table, filters: list[FieldFilter]) -> dict[FieldFilter, pa.Array]:
        if not filters:
            return {}
        n = subscribers.num_rows
        predicates = [field_predicate(f, self.catalog.subscriber[f.field], field_column(f.field), self.as_of)
                      for f in filters]
        # As 0/1 (never null): DuckDB hands UTINYINT columns to Arrow much faster than BOOLEAN ones.
        utinyint = exp.DataType.build("UTINYINT", dialect="duckdb")
        columns = [exp.alias_(exp.cast(p, utinyint, copy=False), f"p{i}", copy=False)
                   for i, p in enumerate(predicates)]
        query = exp.select(exp.column(_ROW), *columns).from_(exp.table_(_INPUT), copy=False)
        numbered = subscribers.append_column(_ROW, pa.array(np.arange(n, dtype=np.int64)))
        result = self._run(query, {_INPUT: numbered})
        rows = result.column(_ROW).to_numpy()
        # A projection keeps row order (checked, not assumed).
        order = None if np.array_equal(rows, np.arange(n)) else np.argsort(rows)
        out = {}
        for i, f in enumerate(filters):
            values = result.column(f"p{i}").to_numpy() != 0
            out[f] = bitmap(values if order is None else values[order])
        return out

    def counts(self, plan: EvaluationPlan, subscribers: pa.Table, events: pa.Table,
               pre: Precomputed) -> EventCounts:
        def event_column(name: str) -> exp.Expr:
            return field_column(name, table=EVENTS)

        def resolve(f: FieldFilter) -> exp.Expr | None:
            name = pre.by_filter.get(f)
            return exp.column(name, table=EVENTS) if name else None

        # One integer per 64 aggregates per event: bit k says whether it counts for aggregate k.
        ubigint = exp.DataType.build("UBIGINT", dialect="duckdb")
        aggregates = list(plan.aggregates.items())
        words = []
        for first in range(0, len(aggregates), 64):
            bits: list[exp.Expr] = []
            for k, (_key, f) in enumerate(aggregates[first:first + 64]):
                condition = two_valued(event_condition(f, self.catalog, plan.as_of, event_column, resolve))
                bits.append(exp.BitwiseLeftShift(this=exp.cast(condition, ubigint, copy=False),
                                                 expression=exp.Literal.number(k)))
            word = functools.reduce(lambda a, b: exp.BitwiseOr(this=a, expression=b), bits)
            words.append(exp.alias_(word, f"w{first // 64}", copy=False))
        prune = exp.and_(
            exp.LTE(this=event_column("occurred_at"), expression=timestamp_literal(plan.as_of)),
            exp.In(this=event_column("event"), expressions=[string_literal(x) for x in plan.event_names]),
            copy=False,
        )
        query = (
            exp.select(exp.column(_ROW, table=_ROWS), *words)
            .from_(exp.table_(EVENTS), copy=False)
            .join(exp.table_(_ROWS), on=exp.EQ(this=exp.column("subscriber_id", table=_ROWS),
                                                expression=event_column("subscriber_id")), copy=False)
            .where(prune, copy=False)
        )
        numbered = pa.table({"subscriber_id": subscribers.column("subscriber_id"),
                             _ROW: pa.array(np.arange(subscribers.num_rows, dtype=np.int64))})
        result = self._run(query, {EVENTS: pre.append_to(events), _ROWS: numbered})
        rows = result.column(_ROW).to_numpy()
        masks = [result.column(f"w{i}").to_numpy() for i in range(len(words))]
        return aggregate_counts(rows, masks, [key for key, _f in aggregates])


def evaluate_flags_duckdb(project: Project, subscribers: pa.Table, events: pa.Table, as_of: datetime,
                          *, encode: bool = True) -> pa.Table:
    """Flags (combine.evaluate_leaves); see the module docstring."""
    with scratch_connection() as con:
        leaves = _DuckDBLeaves(con, project.catalog, as_of)
        return evaluate_leaves(project, subscribers, events, as_of, leaves, encode=encode)
