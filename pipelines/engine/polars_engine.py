"""Evaluate every segment of a project with Polars (lazy), same plan as DuckDB.

1. One pass over `events`: filter to the plan's event names and `<= as_of`,
   group by subscriber, one `sum()` of a boolean condition per distinct aggregate.
2. Left-join the counts to the subscribers (missing counts are 0).
3. One `with_columns` per dependency wave adds a boolean column per segment
   (`"segment:KEY"`); later waves read earlier columns.
4. Unpivot to (segment, subscriber_id), sorted.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pyarrow as pa

from ..segments.fields import REQUIRED_EVENT_FIELDS
from ..segments.model import EventFilter, Project
from ..segments.plan import build_plan, event_count_column, segment_column
from ..segments.to_polars import event_condition, segment_predicate
from .tables import conform, empty_membership, membership_table


def evaluate_polars(project: Project, subscribers: pa.Table, events: pa.Table, as_of: datetime) -> pa.Table:
    plan = build_plan(project, as_of)
    if not plan.segment_keys:
        return empty_membership()
    catalog = project.catalog
    subscribers = conform(subscribers, catalog.subscriber_schema(), plan.subscriber_fields, ["subscriber_id"],
                          "subscriber")
    frame = pl.from_arrow(subscribers).lazy()

    if plan.aggregates:
        events = conform(events, catalog.event_schema(), plan.event_fields, REQUIRED_EVENT_FIELDS, "event")
        count_columns = [event_count_column(key) for key in plan.aggregates]
        counts = (
            pl.from_arrow(events)
            .lazy()
            .filter(
                (pl.col("occurred_at") <= pl.lit(plan.as_of, dtype=pl.Datetime("us")))
                & pl.col("event").is_in(plan.event_names)
            )
            .group_by("subscriber_id")
            .agg(
                event_condition(f, catalog, plan.as_of).sum().cast(pl.Int64).alias(event_count_column(key))
                for key, f in plan.aggregates.items()
            )
        )
        frame = frame.join(counts, on="subscriber_id", how="left").with_columns(
            pl.col(count_columns).fill_null(0)
        )

    def event_count(f: EventFilter) -> pl.Expr:
        return pl.col(event_count_column(f.aggregate_key()))

    def member_of(key: str) -> pl.Expr:
        return pl.col(segment_column(key))  # computed in an earlier wave

    for wave in plan.waves:
        frame = frame.with_columns(
            segment_predicate(project.segments[key], catalog, plan.as_of, event_count, member_of).alias(
                segment_column(key)
            )
            for key in wave
        )

    flags = frame.select("subscriber_id", *(segment_column(k) for k in plan.segment_keys)).collect()
    members = pl.concat(
        [
            flags.lazy()
            .filter(pl.col(segment_column(key)))
            .select(pl.lit(key, dtype=pl.String).alias("segment"), pl.col("subscriber_id"))
            for key in plan.segment_keys
        ]
    )
    result = members.sort(["segment", "subscriber_id"]).collect()
    return membership_table(result.to_arrow())
