"""Evaluate all segments of a project for one snapshot and one `as_of`.

`evaluate` is the one interface; each engine (DuckDB, Polars) lives in its own
module and must give the same membership (spec rule 7, tested differentially
against tests/reference.py).
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from ..errors import UserError
from ..segments.model import Project
from ..segments.plan import naive_utc
from ..segments.to_sql import compile_segment
from .tables import MEMBERSHIP_SCHEMA

ENGINES = ("duckdb", "polars")

__all__ = ["ENGINES", "MEMBERSHIP_SCHEMA", "compiled_sql_by_segment", "evaluate"]


def evaluate(
    project: Project, subscribers: pa.Table, events: pa.Table, as_of: datetime, engine: str = "duckdb"
) -> pa.Table:
    """Membership of every segment: a table (segment string, subscriber_id string),
    one row per member, sorted by (segment, subscriber_id).

    `subscribers`/`events` are Arrow tables typed by the project's field catalog
    (extra columns are ignored; a missing optional column counts as all missing).
    `as_of` is naive UTC (an aware datetime is converted).
    """
    if engine == "duckdb":
        from .duckdb_engine import evaluate_duckdb

        return evaluate_duckdb(project, subscribers, events, naive_utc(as_of))
    if engine == "polars":
        from .polars_engine import evaluate_polars

        return evaluate_polars(project, subscribers, events, naive_utc(as_of))
    raise UserError(f"unknown engine '{engine}' (choose one of: {', '.join(ENGINES)})")


def compiled_sql_by_segment(project: Project, as_of: datetime) -> dict[str, str]:
    """DuckDB text of each segment's standalone query (the warehouse `segments.sql`)."""
    return {key: compile_segment(project, key, as_of, dialect="duckdb") for key in sorted(project.segments)}
