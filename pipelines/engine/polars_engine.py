"""Evaluate every segment of a project with Polars, the same plan as DuckDB.

`evaluate_flags_polars` has Polars evaluate only the leaves of the
definitions, each distinct one once, and combines them as bitmaps
(`combine.py`), like the DuckDB engine: string and tag filters per distinct
value (`encoded.py`), the other field filters in one `select`, and event
aggregates as one group-by over the events joined to the subscribers' rows.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl
import pyarrow as pa

from ..core.flags import sort_by_id
from ..core.schemas import conform, decode_dictionaries
from ..segments.fields import REQUIRED_EVENT_FIELDS
from ..segments.model import FieldFilter, Project
from ..segments.plan import build_plan, segment_column
from ..segments.to_polars import event_condition, field_predicate
from .combine import EventCounts, combine_segments
from .encoded import Precomputed, ValueEvaluator, precompute

# --------------------------------------------------------------------------- the run's path: flags

_ROW = "row_number"


def _frame(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)  # a Table always gives a DataFrame (typed: or a Series)
    return frame


def _value_evaluator(as_of: datetime) -> ValueEvaluator:
    def run(name: str, field_type: str, filters: list[FieldFilter], values: pa.Table) -> list[np.ndarray]:
        frame = _frame(values)
        result = frame.select(
            field_predicate(f, field_type, pl.col(name), as_of).alias(f"p{i}") for i, f in enumerate(filters)
        )
        return [result.get_column(f"p{i}").fill_null(False).to_numpy() for i in range(len(filters))]

    return run


def _event_counts(project: Project, plan, subscribers: pa.Table, events: pa.Table, start: int,
                  encode: bool = True) -> EventCounts:
    catalog = project.catalog
    events = conform(events, catalog.event_schema(), plan.event_fields, REQUIRED_EVENT_FIELDS, what="event",
                     dictionaries=plan.event_fields)
    where = [w for f in plan.aggregates.values() for w in f.where]
    pre = precompute(events, catalog.event, where, _value_evaluator(plan.as_of), start=start) if encode \
        else Precomputed()
    events = decode_dictionaries(events)  # Polars would make them Categorical

    def resolve(f: FieldFilter) -> pl.Expr | None:
        name = pre.name_of(f)
        return pl.col(name) if name else None

    n = subscribers.num_rows
    rows = _frame(pa.table({"subscriber_id": subscribers.column("subscriber_id"),
                                   _ROW: pa.array(np.arange(n, dtype=np.int64))})).lazy()
    keys = list(plan.aggregates)
    counts = (
        _frame(pre.append_to(events))
        .lazy()
        .filter(
            (pl.col("occurred_at") <= pl.lit(plan.as_of, dtype=pl.Datetime("us")))
            & pl.col("event").is_in(plan.event_names)
        )
        .join(rows, on="subscriber_id", how="inner")
        .group_by(_ROW)
        .agg(
            event_condition(f, catalog, plan.as_of, precomputed=resolve).sum().cast(pl.Int64).alias(f"n{i}")
            for i, f in enumerate(plan.aggregates.values())
        )
        .collect()
    )
    counts = counts.sort(_ROW)
    matrix = np.column_stack([counts.get_column(f"n{i}").to_numpy().astype(np.int32) for i in range(len(keys))]) \
        if counts.height else np.zeros((0, len(keys)), np.int32)
    return EventCounts(counts.get_column(_ROW).to_numpy().astype(np.int64), matrix, keys)


def evaluate_flags_polars(project: Project, subscribers: pa.Table, events: pa.Table, as_of: datetime,
                          *, encode: bool = True) -> pa.Table:
    """Flags (subscriber_id sorted, one `segment:KEY` column per segment in key order)."""
    plan = build_plan(project, as_of)
    catalog = project.catalog
    subscribers = sort_by_id(conform(subscribers, catalog.subscriber_schema(), plan.subscriber_fields,
                                     ["subscriber_id"], what="subscriber",
                                     dictionaries=plan.subscriber_fields))
    if not plan.segment_keys:
        return decode_dictionaries(subscribers.select(["subscriber_id"]))
    n = subscribers.num_rows
    filters = list(dict.fromkeys(f for key in plan.segment_keys for f in project.segments[key].field_filters()))
    pre = precompute(subscribers, catalog.subscriber, filters, _value_evaluator(plan.as_of)) if encode \
        else Precomputed()
    rest = [f for f in filters if pre.name_of(f) is None]
    leaves: dict[FieldFilter, pa.Array] = {}
    if rest:
        frame = _frame(decode_dictionaries(subscribers.select(list(dict.fromkeys(f.field for f in rest))))).select(
            field_predicate(f, catalog.subscriber[f.field], pl.col(f.field), plan.as_of).alias(f"p{i}")
            for i, f in enumerate(rest)
        )
        for i, f in enumerate(rest):
            leaves[f] = frame.get_column(f"p{i}").to_arrow()
    counts = _event_counts(project, plan, subscribers, events, len(pre.columns), encode) if plan.aggregates \
        else EventCounts.none()

    def field_result(f: FieldFilter) -> pa.Array:
        name = pre.name_of(f)
        return pre.columns[name] if name else leaves[f]

    results = combine_segments(project, plan, n, field_result, counts)
    keys = sorted(plan.segment_keys)
    ids = decode_dictionaries(subscribers.select(["subscriber_id"])).column("subscriber_id")
    return pa.Table.from_arrays([ids, *(results[k] for k in keys)],
                                names=["subscriber_id", *(segment_column(k) for k in keys)])
