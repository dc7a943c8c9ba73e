"""Evaluate all segments of a project for one snapshot and one `as_of`: one
interface, one module per engine, the same membership from each (spec rule 7,
tested differentially against tests/reference.py).
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from ..core.flags import flags_to_membership, membership_to_flags, sort_by_id
from ..errors import UserError
from ..segments.gc_pause import gc_paused
from ..segments.model import Project
from ..segments.to_sql import compile_segment
from ..segments.utc import naive_utc
from .duckdb_engine import evaluate_flags_duckdb
from .polars_engine import evaluate_flags_polars
from .spark_engine import evaluate_spark  # imports pyspark only when it runs

ENGINES = ("duckdb", "polars")
# Spark is an optional extra (`pip install "segment-pipeline[spark]"`): accepted by
# `evaluate`, but not in ENGINES, which the always-installed test matrix iterates over.
ALL_ENGINES = (*ENGINES, "spark")


def evaluate(
    project: Project, subscribers: pa.Table, events: pa.Table, as_of: datetime, engine: str = "duckdb"
) -> pa.Table:
    """Membership of every segment: a table (segment string, subscriber_id string),
    one row per member, sorted by (segment, subscriber_id). `subscribers`/`events` are
    Arrow tables typed by the project's field catalog (extra columns are ignored; a
    missing optional column counts as all missing); `as_of` is naive UTC (an aware
    datetime is converted)."""
    if engine == "spark":
        return evaluate_spark(project, subscribers, events, naive_utc(as_of))
    return flags_to_membership(evaluate_flags(project, subscribers, events, as_of, engine=engine))


def evaluate_flags(
    project: Project, subscribers: pa.Table, events: pa.Table, as_of: datetime, engine: str = "duckdb",
    *, encode: bool = True,
) -> pa.Table:
    """Membership as flags (core/flags.py): `subscriber_id` sorted, then one
    boolean `segment:KEY` column per segment in key order. What a run keeps and
    publishes; `evaluate` is its long shape. `encode=False` evaluates string and
    tag filters row by row instead of per distinct value (cheaper for a few rows)."""
    if engine == "spark":  # no flags path: its long shape, folded
        ids = sort_by_id(subscribers.select(["subscriber_id"])).column("subscriber_id")
        membership = evaluate_spark(project, subscribers, events, naive_utc(as_of))
        return membership_to_flags(membership, ids, keys=project.segments)
    flags_of = {"duckdb": evaluate_flags_duckdb, "polars": evaluate_flags_polars}.get(engine)
    if flags_of is None:
        raise UserError(f"unknown engine '{engine}' (choose one of: {', '.join(ALL_ENGINES)})")
    return flags_of(project, subscribers, events, naive_utc(as_of), encode=encode)


def compiled_sql_by_segment(project: Project, as_of: datetime) -> dict[str, str]:
    """DuckDB text of each segment's standalone query (the warehouse `segments.sql`)."""
    with gc_paused():  # see gc_pause.py
        return {key: compile_segment(project, key, as_of, dialect="duckdb") for key in sorted(project.segments)}
