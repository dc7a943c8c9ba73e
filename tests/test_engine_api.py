"""The `evaluate` interface and the evaluation plan: output shape, inputs the
engines must tolerate, errors, and the one-scan / one-pass-per-wave design."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pyarrow as pa
import pytest
import sqlglot
from engine_support import (
    CATALOG,
    engine_membership,
    event_table,
    one_filter_segment,
    project_of,
    subscriber_table,
)
from reference import reference_membership
from sqlglot import exp

from pipelines.core.schemas import MEMBERSHIP as MEMBERSHIP_SCHEMA
from pipelines.engine import ENGINES, evaluate
from pipelines.engine.spark_engine import flags_query
from pipelines.errors import UserError
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
from pipelines.segments.plan import build_plan
from pipelines.segments.to_sql import compile_segment

AS_OF = datetime(2026, 3, 1, 12)
NY = FieldFilter(field="state", op="is", value="NY")
ROWS = [
    {"subscriber_id": "a", "email": "a@x", "status": "active", "state": "NY", "tags": ["VIP"]},
    {"subscriber_id": "b", "email": "b@x", "status": "bounced", "state": "ca", "tags": None},
]
EVENTS = [
    {"event_id": "e1", "subscriber_id": "a", "event": "purchase", "occurred_at": AS_OF - timedelta(days=2)},
    {"event_id": "e2", "subscriber_id": "b", "event": "purchase", "occurred_at": AS_OF - timedelta(days=40)},
]


@pytest.mark.parametrize("engine", ENGINES)
def test_output_schema_and_order(engine):
    project = project_of(one_filter_segment("ny", NY), one_filter_segment("all", FieldFilter(field="email",
                                                                                             op="is_set")))
    table = evaluate(project, subscriber_table(ROWS), event_table(EVENTS), AS_OF, engine=engine)
    assert table.schema == MEMBERSHIP_SCHEMA
    assert table.to_pylist() == [
        {"segment": "all", "subscriber_id": "a"},
        {"segment": "all", "subscriber_id": "b"},
        {"segment": "ny", "subscriber_id": "a"},
    ]


@pytest.mark.parametrize("engine", ENGINES)
def test_empty_project_and_empty_snapshot(engine):
    empty = evaluate(Project(catalog=CATALOG), subscriber_table(ROWS), event_table(EVENTS), AS_OF, engine=engine)
    assert empty.schema == MEMBERSHIP_SCHEMA and empty.num_rows == 0
    project = project_of(one_filter_segment("ny", NY),
                         one_filter_segment("buyers", EventFilter(event="purchase", op="performed")))
    none = evaluate(project, subscriber_table([]), event_table([]), AS_OF, engine=engine)
    assert none.schema == MEMBERSHIP_SCHEMA and none.num_rows == 0


def test_unknown_engine_is_a_user_error():
    with pytest.raises(UserError, match="spark2"):
        evaluate(project_of(one_filter_segment("ny", NY)), subscriber_table(ROWS), event_table(EVENTS), AS_OF,
                 engine="spark2")


@pytest.mark.parametrize("engine", ENGINES)
def test_unknown_reference_and_cycle_are_user_errors(engine):
    dangling = one_filter_segment("a", SegmentFilter(segment="ghost", op="is"))
    with pytest.raises(UserError, match="ghost"):
        evaluate(project_of(dangling), subscriber_table(ROWS), event_table(EVENTS), AS_OF, engine=engine)
    a = one_filter_segment("a", SegmentFilter(segment="b", op="is"))
    b = one_filter_segment("b", SegmentFilter(segment="a", op="is_not"))
    with pytest.raises(UserError, match="a -> b -> a"):
        evaluate(project_of(a, b), subscriber_table(ROWS), event_table(EVENTS), AS_OF, engine=engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_inputs_are_conformed_to_the_catalog(engine):
    """Extra columns are ignored, a missing optional column is all missing, Arrow
    variants of a type (large_string, several chunks) are accepted."""
    project = project_of(
        one_filter_segment("ny", NY),
        one_filter_segment("no_city", FieldFilter(field="city", op="is_not_set")),
        one_filter_segment("recent", EventFilter(event="purchase", op="performed", in_last_days=7)),
    )
    subs = subscriber_table(ROWS).drop_columns(["city"]).append_column("extra", pa.array(["x", "y"]))
    subs = subs.set_column(subs.schema.get_field_index("state"), "state",
                           subs.column("state").cast(pa.large_string()))
    subs = pa.concat_tables([subs.slice(0, 1), subs.slice(1)])
    assert subs.column("state").num_chunks == 2
    events = event_table(EVENTS).drop_columns(["amount"])
    got = engine_membership(project, subs, events, AS_OF, engine)
    assert got == {("ny", "a"), ("no_city", "a"), ("no_city", "b"), ("recent", "a")}


def test_missing_required_column_is_a_user_error():
    subs = subscriber_table(ROWS).drop_columns(["subscriber_id"])
    with pytest.raises(UserError, match="subscriber_id"):
        evaluate(project_of(one_filter_segment("ny", NY)), subs, event_table(EVENTS), AS_OF)


@pytest.mark.parametrize("engine", ENGINES)
def test_aware_as_of_means_the_same_utc_instant(engine):
    project = project_of(one_filter_segment("recent", EventFilter(event="purchase", op="performed",
                                                                  in_last_days=2)))
    subs, events = subscriber_table(ROWS), event_table(EVENTS)
    naive = evaluate(project, subs, events, AS_OF, engine=engine)
    aware = evaluate(project, subs, events, (AS_OF + timedelta(hours=2)).replace(
        tzinfo=timezone(timedelta(hours=2))), engine=engine)
    utc = evaluate(project, subs, events, AS_OF.replace(tzinfo=UTC), engine=engine)
    assert naive.num_rows == 1 and naive.equals(aware) and naive.equals(utc)
    # And one microsecond earlier, the event (exactly 2 days before as_of) leaves the window.
    assert evaluate(project, subs, events, AS_OF + timedelta(microseconds=1), engine=engine).num_rows == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_segment_keys_may_equal_field_names_and_fields_may_be_sql_keywords(engine):
    catalog = FieldCatalog.with_custom({"order": "integer", "group": "string", "select": "list"}, {})
    state = one_filter_segment("state", FieldFilter(field="group", op="is", value="A"))
    subscriber_id = Segment(key="subscriber_id", name="x", groups=(Group(match="any", filters=(
        SegmentFilter(segment="state", op="is"), FieldFilter(field="order", op="gt", value=1),
        FieldFilter(field="select", op="has_any", value=("x",)))),))
    project = Project(catalog=catalog, segments={"state": state, "subscriber_id": subscriber_id})
    rows = [
        {"subscriber_id": "a", "email": "a@x", "status": "active", "group": "a", "order": 0, "select": None},
        {"subscriber_id": "b", "email": "b@x", "status": "active", "group": "b", "order": 2, "select": []},
        {"subscriber_id": "c", "email": "c@x", "status": "active", "group": None, "order": None, "select": ["X"]},
    ]
    subs = pa.Table.from_pylist(rows, schema=catalog.subscriber_schema())
    events = pa.Table.from_pylist([], schema=catalog.event_schema())
    got = engine_membership(project, subs, events, AS_OF, engine)
    assert got == reference_membership(project, rows, [], AS_OF)
    assert got == {("state", "a"), ("subscriber_id", "a"), ("subscriber_id", "b"), ("subscriber_id", "c")}
    for key in project.segments:
        sqlglot.parse_one(compile_segment(project, key, AS_OF, dialect="spark"), read="spark")


def test_plan_deduplicates_event_aggregates_across_segments():
    bought = EventFilter(event="purchase", op="performed")
    bought_twice = EventFilter(event="purchase", op="performed", count=EventCount(op="gte", value=2))
    never_bought = EventFilter(event="purchase", op="not_performed")
    recent = EventFilter(event="purchase", op="performed", in_last_days=7)
    project = project_of(
        one_filter_segment("a", bought), one_filter_segment("b", bought_twice),
        one_filter_segment("c", never_bought), one_filter_segment("d", recent),
        one_filter_segment("e", SegmentFilter(segment="a", op="is")),
    )
    plan = build_plan(project, AS_OF)
    assert len(plan.aggregates) == 2
    assert plan.waves == [["a", "b", "c", "d"], ["e"]]
    sql = flags_query(project, plan)
    # One scan of events, one COUNT(*) FILTER per distinct aggregate, one CTE per wave.
    assert [t.name for t in sql.find_all(exp.Table)].count("events") == 1
    assert len(list(sql.find_all(exp.Filter))) == 2
    assert [cte.alias for cte in sql.args["with_"].expressions] == ["event_counts", "base", "wave_0", "wave_1"]


def test_engines_agree_on_a_larger_random_snapshot():
    """Thousands of rows in several Arrow chunks (the hypothesis tests use tiny ones)."""
    rng = random.Random(7)
    states = ["NY", "ny", "CA", None, "Tx"]
    tags = ["vip", "VIP", "webinar", "a%b", "new"]
    subs = [
        {"subscriber_id": f"s{i:05d}", "email": f"{i}@x", "status": "active", "state": rng.choice(states),
         "age": rng.choice([None, *range(15, 80)]),
         "tags": rng.choice([None, [], rng.sample(tags, rng.randint(1, 3))]),
         "created_at": AS_OF - timedelta(seconds=rng.randint(-86400, 86400 * 60))}
        for i in range(3000)
    ]
    events = [
        {"event_id": f"e{i}", "subscriber_id": f"s{rng.randint(0, 3100):05d}",
         "event": rng.choice(["purchase", "email_open"]), "amount": rng.choice([None, 5.0, 50.0, 500.0]),
         "occurred_at": AS_OF - timedelta(seconds=rng.randint(-86400, 86400 * 60))}
        for i in range(12000)
    ]
    project = project_of(
        one_filter_segment("ny", NY),
        Segment(key="big_recent_buyers", name="x", match="all", groups=(
            Group(filters=(EventFilter(event="purchase", op="performed", in_last_days=30,
                                       where=(FieldFilter(field="amount", op="gte", value=50),),
                                       count=EventCount(op="gte", value=2)),)),
            Group(match="none", filters=(FieldFilter(field="tags", op="has_any", value=("VIP",)),)),
        )),
        Segment(key="ny_or_young", name="x", groups=(
            Group(filters=(SegmentFilter(segment="ny", op="is"),)),
            Group(filters=(FieldFilter(field="age", op="lt", value=25),
                           FieldFilter(field="created_at", op="in_last_days", value=7))),
        )),
    )
    sub_table = pa.concat_tables([subscriber_table(subs[:1000]), subscriber_table(subs[1000:])])
    event_tbl = pa.concat_tables([event_table(events[:5000]), event_table(events[5000:])])
    expected = reference_membership(project, subs, events, AS_OF)
    assert len(expected) > 500
    for engine in ENGINES:
        assert engine_membership(project, sub_table, event_tbl, AS_OF, engine) == expected
