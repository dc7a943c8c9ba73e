"""Helpers shared by the engine and compiler tests: a catalog with a custom field
of every type on both tables, row dicts -> Arrow, and one function that runs a
project through every implementation (DuckDB, Polars, the standalone SQL of each
segment in DuckDB, and the pure-Python reference)."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pyarrow as pa
from reference import reference_membership

from pipelines.engine import ENGINES, evaluate
from pipelines.segments.fields import FieldCatalog
from pipelines.segments.model import (
    EventCount,
    EventFilter,
    FieldFilter,
    Group,
    Project,
    Segment,
    SegmentFilter,
)
from pipelines.segments.to_sql import compile_segment

CATALOG = FieldCatalog.with_custom(
    {
        "loyalty_points": "integer",
        "score": "number",
        "vip": "boolean",
        "birthday": "date",
        "last_login": "timestamp",
        "interests": "list",
    },
    {
        "coupon": "string",
        "quantity": "integer",
        "gift": "boolean",
        "ship_date": "date",
        "labels": "list",
    },
)

Membership = set[tuple[str, str]]

_DB = duckdb.connect(":memory:")  # opening a database is slow; a cursor per query is not


def duckdb_cursor() -> duckdb.DuckDBPyConnection:
    """A fresh connection (own registrations and temp tables) to a shared in-memory database."""
    return _DB.cursor()


def subscriber_table(rows: list[dict], catalog: FieldCatalog = CATALOG) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=catalog.subscriber_schema())


def event_table(rows: list[dict], catalog: FieldCatalog = CATALOG) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=catalog.event_schema())


def project_of(*segments: Segment, catalog: FieldCatalog = CATALOG) -> Project:
    return Project(catalog=catalog, segments={s.key: s for s in segments})


def one_filter_segment(key: str, f: FieldFilter | EventFilter | SegmentFilter) -> Segment:
    return Segment(key=key, name=key, groups=(Group(filters=(f,)),))


def engine_membership(project: Project, subscribers: pa.Table, events: pa.Table, as_of: datetime,
                      engine: str) -> Membership:
    """Membership from `evaluate`, after checking its schema, order and uniqueness."""
    table = evaluate(project, subscribers, events, as_of, engine=engine)
    assert table.schema.names == ["segment", "subscriber_id"]
    assert table.schema.field("segment").type == pa.string()
    assert table.schema.field("subscriber_id").type == pa.string()
    rows = list(zip(table.column("segment").to_pylist(), table.column("subscriber_id").to_pylist(), strict=True))
    assert rows == sorted(rows), f"{engine}: output not sorted by (segment, subscriber_id)"
    assert len(rows) == len(set(rows)), f"{engine}: duplicate rows"
    return set(rows)


def standalone_membership(project: Project, subscribers: pa.Table, events: pa.Table, as_of: datetime,
                          membership: Membership) -> Membership:
    """Each segment's standalone DuckDB query, run against `subscribers`, `events`
    and a `segment_membership` table holding `membership` (what references read)."""
    con = duckdb_cursor()
    try:
        con.register("subscribers", subscribers)
        con.register("events", events)
        con.register("segment_membership", pa.Table.from_pylist(
            [{"segment": s, "subscriber_id": i} for s, i in sorted(membership)],
            schema=pa.schema([("segment", pa.string()), ("subscriber_id", pa.string())]),
        ))
        out: Membership = set()
        for key in project.segments:
            ids = [r[0] for r in con.sql(compile_segment(project, key, as_of)).fetchall()]
            assert ids == sorted(ids)
            out |= {(key, i) for i in ids}
        return out
    finally:
        con.close()


def all_memberships(project: Project, subscribers: list[dict], events: list[dict],
                    as_of: datetime) -> dict[str, Membership]:
    """{implementation name: membership} for the reference, every engine and the standalone SQL."""
    expected = reference_membership(project, subscribers, events, as_of)
    subs, evs = subscriber_table(subscribers, project.catalog), event_table(events, project.catalog)
    results = {"reference": expected}
    for engine in ENGINES:
        results[engine] = engine_membership(project, subs, evs, as_of, engine)
    results["standalone_sql"] = standalone_membership(project, subs, evs, as_of, expected)
    return results


def assert_all_agree(project: Project, subscribers: list[dict], events: list[dict], as_of: datetime) -> Membership:
    results = all_memberships(project, subscribers, events, as_of)
    expected = results["reference"]
    for name, got in results.items():
        assert got == expected, (
            f"{name} disagrees with the reference:\n  missing {sorted(expected - got)}\n"
            f"  extra   {sorted(got - expected)}"
        )
    return expected


__all__ = [
    "CATALOG",
    "EventCount",
    "EventFilter",
    "FieldFilter",
    "Group",
    "Segment",
    "SegmentFilter",
    "all_memberships",
    "duckdb_cursor",
    "assert_all_agree",
    "engine_membership",
    "event_table",
    "one_filter_segment",
    "project_of",
    "standalone_membership",
    "subscriber_table",
]
