"""Segment model -> Polars expressions, with the same shape as `to_sql.py`.

Each field filter is built by its operator's `polars` builder (operators.py);
a negative operator is `~` of its positive partner after `fill_null(False)`
(spec rule 3), so missing values are in every negative operator and in no
positive one. The and/or/none tree is tree.py's. Values enter as literals only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import polars as pl

from .fields import FieldCatalog
from .model import EventCount, EventFilter, FieldFilter, Segment
from .operators import COMPARISONS, PL_TIMESTAMP, operator_for, window_start
from .plan import naive_utc
from .tree import Backend, field_leaf, walk

ColumnResolver = Callable[[str], pl.Expr]
EventCountResolver = Callable[[EventFilter], pl.Expr]
MemberResolver = Callable[[str], pl.Expr]
# A field filter evaluated ahead of the query (pipelines/engine/encoded.py): its
# never-null result column, or None to build the filter here.
PrecomputedResolver = Callable[[FieldFilter], pl.Expr | None]


def _ts(value: datetime) -> pl.Expr:
    return pl.lit(value, dtype=PL_TIMESTAMP)


def all_of(conditions: Sequence[pl.Expr]) -> pl.Expr:
    return pl.all_horizontal(conditions) if conditions else pl.lit(True)


def any_of(conditions: Sequence[pl.Expr]) -> pl.Expr:
    return pl.any_horizontal(conditions) if conditions else pl.lit(False)


def field_predicate(f: FieldFilter, field_type: str, column: pl.Expr, as_of: datetime) -> pl.Expr:
    """A never-null boolean expression for one field filter on `column`."""
    op = operator_for(f, field_type)
    predicate = op.polars(column, f.value, field_type, naive_utc(as_of)).fill_null(False)
    return ~predicate if op.negation_of else predicate


def count_predicate(n: pl.Expr, count: EventCount) -> pl.Expr:
    return COMPARISONS[count.op](n, count.value)


def event_condition(f: EventFilter, catalog: FieldCatalog, as_of: datetime, column: ColumnResolver = pl.col,
                    precomputed: PrecomputedResolver | None = None) -> pl.Expr:
    """Which event rows a filter counts (never null): exact name, not after
    `as_of`, in the window, and every `where` filter."""
    as_of = naive_utc(as_of)
    conditions = [column("event") == pl.lit(f.event, dtype=pl.String), column("occurred_at") <= _ts(as_of)]
    if f.in_last_days is not None:
        conditions.append(column("occurred_at") >= _ts(window_start(as_of, f.in_last_days)))
    where = field_leaf(field_predicate, catalog.event, "event", column, as_of, precomputed)
    return all_of([*conditions, *(where(w) for w in f.where)]).fill_null(False)


def segment_predicate(
    segment: Segment,
    catalog: FieldCatalog,
    as_of: datetime,
    event_count: EventCountResolver,
    member_of: MemberResolver,
    column: ColumnResolver = pl.col,
    precomputed: PrecomputedResolver | None = None,
) -> pl.Expr:
    """The segment's membership condition (never null), given where event
    counts (never null) and other segments' membership (never null) come from."""
    backend = Backend(all_of, any_of, lambda x: ~x,
                      field_leaf(field_predicate, catalog.subscriber, "subscriber", column, as_of, precomputed),
                      lambda f: count_predicate(event_count(f), f.count), member_of)
    return walk(segment, backend)
