"""Evaluate every segment with Polars evaluating the leaves of the definitions
(`combine.py` does the rest, as for DuckDB): the field filters in one `select`,
event aggregates as one group-by over the events joined to the subscribers' rows.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl
import pyarrow as pa

from ..core.schemas import decode_dictionaries
from ..segments.fields import FieldCatalog
from ..segments.model import FieldFilter, Project
from ..segments.plan import EvaluationPlan
from ..segments.to_polars import event_condition, field_predicate
from .combine import EventCounts, evaluate_leaves
from .encoded import Precomputed

_ROW = "row_number"


def _frame(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)  # a Table always gives a DataFrame (typed: or a Series)
    return frame


class _PolarsLeaves:
    """The leaves of the definitions (combine.Leaves) as Polars expressions."""

    def __init__(self, catalog: FieldCatalog, as_of: datetime):
        self.catalog, self.as_of = catalog, as_of

    def values(self, name: str, field_type: str, filters: list[FieldFilter],
               values: pa.Table) -> list[np.ndarray]:
        result = _frame(values).select(field_predicate(f, field_type, pl.col(name), self.as_of).alias(f"p{i}")
                                       for i, f in enumerate(filters))
        return [result.get_column(f"p{i}").fill_null(False).to_numpy() for i in range(len(filters))]

    def fields(self, subscribers: pa.Table, filters: list[FieldFilter]) -> dict[FieldFilter, pa.Array]:
        if not filters:
            return {}
        frame = _frame(decode_dictionaries(subscribers.select(list(dict.fromkeys(f.field for f in filters)))))
        result = frame.select(
            field_predicate(f, self.catalog.subscriber[f.field], pl.col(f.field), self.as_of).alias(f"p{i}")
            for i, f in enumerate(filters)
        )
        return {f: result.get_column(f"p{i}").to_arrow() for i, f in enumerate(filters)}

    def counts(self, plan: EvaluationPlan, subscribers: pa.Table, events: pa.Table,
               pre: Precomputed) -> EventCounts:
        def resolve(f: FieldFilter) -> pl.Expr | None:
            name = pre.by_filter.get(f)
            return pl.col(name) if name else None

        rows = _frame(pa.table({"subscriber_id": subscribers.column("subscriber_id"),
                                _ROW: pa.array(np.arange(subscribers.num_rows, dtype=np.int64))})).lazy()
        keys = list(plan.aggregates)
        counts = (
            _frame(pre.append_to(decode_dictionaries(events)))  # Polars would make dictionaries Categorical
            .lazy()
            .filter(
                (pl.col("occurred_at") <= pl.lit(plan.as_of, dtype=pl.Datetime("us")))
                & pl.col("event").is_in(plan.event_names)
            )
            .join(rows, on="subscriber_id", how="inner")
            .group_by(_ROW)
            .agg(
                event_condition(f, self.catalog, plan.as_of, precomputed=resolve).sum().cast(pl.Int64)
                .alias(f"n{i}") for i, f in enumerate(plan.aggregates.values())
            )
            .collect()
            .sort(_ROW)
        )
        matrix = counts.select(f"n{i}" for i in range(len(keys))).to_numpy().astype(np.int32)
        return EventCounts(counts.get_column(_ROW).to_numpy().astype(np.int64), matrix, keys)


def evaluate_flags_polars(project: Project, subscribers: pa.Table, events: pa.Table, as_of: datetime,
                          *, encode: bool = True) -> pa.Table:
    """Flags (combine.evaluate_leaves) with Polars evaluating the leaves."""
    leaves = _PolarsLeaves(project.catalog, as_of)
    return evaluate_leaves(project, subscribers, events, as_of, leaves, encode=encode)
