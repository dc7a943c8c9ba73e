"""Table-driven tests, one row per (operator, interesting value), with the expected
members worked out by hand from segment-language.md on a tiny fixture.

Every case runs through the reference evaluator, both engines and the standalone
SQL of the segment, and all must give exactly the expected members. The fixture
is built so that the classic mistakes give different answers: missing values
and empty lists (rule 2/3), mixed case (rule 4), `%`/`_` in values (LIKE
wildcards), timestamps exactly on and 1 microsecond off window edges, values
after `as_of`, integer/number mixes, and events of other names, other case,
other subscribers and the future.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from engine_support import (
    assert_all_agree,
    one_filter_segment,
    project_of,
)

from pipelines.segments.fields import FIELD_TYPES
from pipelines.segments.model import EventCount, EventFilter, FieldFilter, Group, Segment, SegmentFilter
from pipelines.segments.operators import OPERATORS, operators_of_type

AS_OF = datetime(2026, 3, 1, 12, 0, 0)
US = timedelta(microseconds=1)

SUBSCRIBERS = [
    {
        "subscriber_id": "ann", "email": "ann@example.com", "status": "active",
        "first_name": "Ann", "city": "New York", "state": "NY", "signup_form": "50% off",
        "age": 30, "score": 49.5, "vip": True, "birthday": date(1990, 5, 1),
        "created_at": AS_OF - timedelta(days=30),          # exactly on the 30-day edge
        "last_login": AS_OF,                                # exactly as_of
        "tags": ["Webinar-Attendee", "VIP"], "interests": None,
    },
    {
        "subscriber_id": "bob", "email": "bob@example.com", "status": "unsubscribed",
        "first_name": "a_b", "city": "new york", "state": "ny", "signup_form": "5x0 off",
        "age": 31, "score": 50.0, "vip": False, "birthday": date(2026, 1, 30),
        "created_at": AS_OF - timedelta(days=30) - US,      # 1 µs before the edge
        "last_login": AS_OF + US,                           # after as_of
        "tags": ["webinar-attendee"], "interests": [],
    },
    {
        "subscriber_id": "cy", "email": "cy@example.com", "status": "bounced",
        "first_name": "O'Brien", "city": "Los Angeles", "state": "CA", "signup_form": "Checkout",
        "age": 29, "score": -1.5, "vip": None, "birthday": None,
        "created_at": datetime(2026, 3, 1), "last_login": None,
        "tags": [], "interests": ["Golf"],
    },
    # Every optional field missing.
    {"subscriber_id": "dee", "email": "dee@example.com", "status": "complained"},
]
EVERYONE = {"ann", "bob", "cy", "dee"}

EVENTS = [
    {"event_id": "e1", "subscriber_id": "ann", "event": "purchase", "occurred_at": AS_OF - timedelta(days=30),
     "amount": 50, "coupon": "SAVE%10", "quantity": 2, "gift": True, "ship_date": date(2026, 1, 31),
     "labels": ["Promo"]},
    {"event_id": "e2", "subscriber_id": "ann", "event": "purchase", "occurred_at": AS_OF, "amount": 10.0},
    {"event_id": "e3", "subscriber_id": "ann", "event": "purchase", "occurred_at": AS_OF + US, "amount": 999},
    {"event_id": "e4", "subscriber_id": "bob", "event": "Purchase", "occurred_at": AS_OF - timedelta(days=1)},
    {"event_id": "e5", "subscriber_id": "bob", "event": "purchase",
     "occurred_at": AS_OF - timedelta(days=30) - US, "amount": 100, "coupon": "save_10", "quantity": 1},
    {"event_id": "e6", "subscriber_id": "cy", "event": "email_open", "occurred_at": AS_OF - timedelta(days=1)},
    {"event_id": "e7", "subscriber_id": "ghost", "event": "purchase", "occurred_at": AS_OF - timedelta(days=1)},
]


def run(segment: Segment, *others: Segment, as_of: datetime = AS_OF, subscribers=SUBSCRIBERS) -> set[str]:
    members = assert_all_agree(project_of(segment, *others), subscribers, EVENTS, as_of)
    return {sid for key, sid in members if key == segment.key}


def field(name: str, op: str, value=None) -> Segment:
    return one_filter_segment("s", FieldFilter(field=name, op=op, value=value))


FIELD_CASES = [
    # strings: case-insensitive, % and _ literal
    ("state", "is", "Ny", {"ann", "bob"}),
    ("state", "is_not", "Ny", {"cy", "dee"}),
    ("state", "in", ("ca", "NY"), {"ann", "bob", "cy"}),
    ("state", "not_in", ("ca", "NY"), {"dee"}),
    ("city", "contains", "YORK", {"ann", "bob"}),
    ("city", "not_contains", "YORK", {"cy", "dee"}),
    ("signup_form", "contains", "%", {"ann"}),
    ("signup_form", "not_contains", "%", {"bob", "cy", "dee"}),
    ("first_name", "contains", "_", {"bob"}),
    ("first_name", "starts_with", "a_", {"bob"}),
    ("first_name", "starts_with", "AN", {"ann"}),
    ("first_name", "ends_with", "'BRIEN", {"cy"}),
    ("first_name", "ends_with", "%", set()),
    ("state", "is_set", None, {"ann", "bob", "cy"}),
    ("state", "is_not_set", None, {"dee"}),
    # integers, and integer/number mixes
    ("age", "is", 30, {"ann"}),
    ("age", "is", 30.0, {"ann"}),
    ("age", "is_not", 30, {"bob", "cy", "dee"}),
    ("age", "in", (29, 31), {"bob", "cy"}),
    ("age", "not_in", (29, 31), {"ann", "dee"}),
    ("age", "gt", 30, {"bob"}),
    ("age", "gt", 30.5, {"bob"}),
    ("age", "gte", 30, {"ann", "bob"}),
    ("age", "lt", 30, {"cy"}),
    ("age", "lte", 30, {"ann", "cy"}),
    ("age", "between", (29, 30), {"ann", "cy"}),
    ("age", "is_set", None, {"ann", "bob", "cy"}),
    ("age", "is_not_set", None, {"dee"}),
    ("score", "is", 50, {"bob"}),
    ("score", "gt", 49.5, {"bob"}),
    ("score", "gte", 49.5, {"ann", "bob"}),
    ("score", "lt", 0, {"cy"}),
    ("score", "between", (-1.5, 49.5), {"ann", "cy"}),
    ("score", "in", (50, -1.5), {"bob", "cy"}),
    ("score", "not_in", (50, -1.5), {"ann", "dee"}),
    ("score", "is_not", 50, {"ann", "cy", "dee"}),
    ("score", "lte", -1.5, {"cy"}),
    ("score", "lte", 49, {"cy"}),
    ("score", "is_set", None, {"ann", "bob", "cy"}),
    ("score", "is_not_set", None, {"dee"}),
    # booleans
    ("vip", "is", True, {"ann"}),
    ("vip", "is", False, {"bob"}),
    ("vip", "is_not", True, {"bob", "cy", "dee"}),
    ("vip", "is_not", False, {"ann", "cy", "dee"}),
    ("vip", "is_set", None, {"ann", "bob"}),
    ("vip", "is_not_set", None, {"cy", "dee"}),
    # dates: calendar comparisons; in_last_days takes the date as midnight UTC
    ("birthday", "before", date(2000, 1, 1), {"ann"}),
    ("birthday", "after", date(2000, 1, 1), {"bob"}),
    ("birthday", "on", date(2026, 1, 30), {"bob"}),
    ("birthday", "between", (date(2026, 1, 30), date(2026, 1, 30)), {"bob"}),
    ("birthday", "in_last_days", 30, set()),  # 2026-01-30 00:00 < as_of - 30 days = 2026-01-30 12:00
    ("birthday", "in_last_days", 31, {"bob"}),
    ("birthday", "not_in_last_days", 30, EVERYONE),
    ("birthday", "not_in_last_days", 31, {"ann", "cy", "dee"}),
    ("birthday", "is_set", None, {"ann", "bob"}),
    ("birthday", "is_not_set", None, {"cy", "dee"}),
    # timestamps: UTC calendar date for before/after/on/between; inclusive windows
    ("created_at", "in_last_days", 30, {"ann", "cy"}),
    ("created_at", "not_in_last_days", 30, {"bob", "dee"}),
    ("created_at", "on", date(2026, 1, 30), {"ann", "bob"}),
    ("created_at", "before", date(2026, 1, 31), {"ann", "bob"}),
    ("created_at", "after", date(2026, 1, 30), {"cy"}),
    ("created_at", "between", (date(2026, 1, 30), date(2026, 3, 1)), {"ann", "bob", "cy"}),
    ("last_login", "in_last_days", 1, {"ann"}),  # bob's is after as_of
    ("last_login", "not_in_last_days", 1, {"bob", "cy", "dee"}),
    ("last_login", "on", date(2026, 3, 1), {"ann", "bob"}),
    ("last_login", "in_last_days", 10**6, {"ann"}),  # window reaching before year 1
    ("last_login", "is_set", None, {"ann", "bob"}),
    ("last_login", "is_not_set", None, {"cy", "dee"}),
    # lists: tags match case-insensitively; a missing list is the empty list
    ("tags", "has_any", ("WEBINAR-attendee",), {"ann", "bob"}),
    ("tags", "has_any", ("vip", "x"), {"ann"}),
    ("tags", "has_none", ("WEBINAR-attendee",), {"cy", "dee"}),
    ("tags", "has_all", ("vip", "webinar-attendee"), {"ann"}),
    ("tags", "has_all", ("nope",), set()),
    ("tags", "is_set", None, {"ann", "bob"}),
    ("tags", "is_not_set", None, {"cy", "dee"}),
    ("interests", "is_set", None, {"cy"}),
    ("interests", "has_any", ("golf",), {"cy"}),
    ("interests", "has_none", ("golf",), {"ann", "bob", "dee"}),
]


@pytest.mark.parametrize(("name", "op", "value", "expected"), FIELD_CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]!r}" for c in FIELD_CASES])
def test_field_operator(name, op, value, expected):
    assert run(field(name, op, value)) == expected


def test_date_window_edge_at_midnight_as_of():
    # With as_of at midnight, as_of - 30 days is exactly 2026-01-30 00:00: bob's birthday is on the edge.
    assert run(field("birthday", "in_last_days", 30), as_of=datetime(2026, 3, 1)) == {"bob"}


def test_every_operator_of_every_type_is_covered():
    for field_type in FIELD_TYPES:
        ops = operators_of_type(field_type)
        covered = {op for name, op, _, _ in FIELD_CASES if name in FIELD_TYPES_OF[field_type]}
        assert set(ops) <= covered, (field_type, set(ops) - covered)


FIELD_TYPES_OF = {
    "string": ("state", "city", "signup_form", "first_name"),
    "integer": ("age",),
    "number": ("score",),
    "boolean": ("vip",),
    "date": ("birthday",),
    "timestamp": ("created_at", "last_login"),
    "list": ("tags", "interests"),
}

COMPLEMENT_CASES = [
    ("state", "Ny"), ("age", 30), ("vip", True), ("created_at", 30), ("tags", ("vip",)),
    ("city", "YORK"), ("score", (50, -1.5)), ("birthday", 31),
]


@pytest.mark.parametrize("negative", sorted(op.name for op in OPERATORS.values() if op.negation_of))
def test_negative_operator_is_exact_complement_including_missing(negative):
    positive = OPERATORS[negative].negation_of
    for name, value in COMPLEMENT_CASES:
        types = [t for t, names in FIELD_TYPES_OF.items() if name in names]
        if positive not in operators_of_type(types[0]):
            continue
        if positive == "is_set":
            value = None
        elif positive == "in" and not isinstance(value, tuple):
            value = (value,)
        elif positive == "is" and isinstance(value, tuple):
            value = value[0]
        pos = run(field(name, positive, value))
        neg = run(field(name, negative, value))
        assert pos | neg == EVERYONE and not pos & neg, (name, positive, value)
        assert "dee" in neg  # the subscriber with every value missing


EVENT_CASES = [
    (dict(), {"ann", "bob"}),  # e3 is after as_of; ghost is not in the snapshot
    (dict(op="not_performed"), {"cy", "dee"}),
    (dict(in_last_days=30), {"ann"}),  # e1 exactly on the edge, e5 1 µs before it
    (dict(op="not_performed", in_last_days=30), {"bob", "cy", "dee"}),
    (dict(count=EventCount(op="gte", value=2)), {"ann"}),
    (dict(count=EventCount(op="is", value=2)), {"ann"}),
    (dict(count=EventCount(op="is", value=1)), {"bob"}),
    (dict(count=EventCount(op="gt", value=1)), {"ann"}),
    (dict(count=EventCount(op="lt", value=1)), {"cy", "dee"}),
    (dict(count=EventCount(op="lt", value=3)), EVERYONE),  # n may be 0
    (dict(count=EventCount(op="lte", value=0)), {"cy", "dee"}),
    (dict(op="not_performed", count=EventCount(op="lt", value=3)), set()),
    (dict(event="Purchase"), {"bob"}),  # event names match exactly
    (dict(event="email_open", in_last_days=1), {"cy"}),
    (dict(where=(FieldFilter(field="amount", op="gte", value=50),)), {"ann", "bob"}),
    (dict(op="not_performed", where=(FieldFilter(field="amount", op="gte", value=50),)), {"cy", "dee"}),
    (dict(where=(FieldFilter(field="coupon", op="contains", value="%"),)), {"ann"}),
    (dict(where=(FieldFilter(field="coupon", op="contains", value="_"),)), {"bob"}),
    (dict(where=(FieldFilter(field="coupon", op="is", value="save%10"),)), {"ann"}),
    (dict(where=(FieldFilter(field="coupon", op="is_not_set"),)), {"ann"}),  # e2 has no coupon
    (dict(where=(FieldFilter(field="coupon", op="not_contains", value="%"),)), {"ann", "bob"}),
    (dict(where=(FieldFilter(field="labels", op="has_any", value=("promo",)),)), {"ann"}),
    (dict(where=(FieldFilter(field="labels", op="has_none", value=("promo",)),)), {"ann", "bob"}),
    (dict(where=(FieldFilter(field="gift", op="is", value=True),)), {"ann"}),
    (dict(where=(FieldFilter(field="ship_date", op="on", value=date(2026, 1, 31)),)), {"ann"}),
    (dict(where=(FieldFilter(field="quantity", op="gt", value=1),)), {"ann"}),
    (dict(where=(FieldFilter(field="occurred_at", op="in_last_days", value=1),)), {"ann"}),
    (dict(where=(FieldFilter(field="amount", op="gte", value=10),
                 FieldFilter(field="amount", op="lt", value=50)), count=EventCount(op="is", value=1)), {"ann"}),
]


@pytest.mark.parametrize(("spec", "expected"), EVENT_CASES, ids=[str(i) for i in range(len(EVENT_CASES))])
def test_event_filter(spec, expected):
    f = EventFilter(**{"event": "purchase", "op": "performed", **spec})
    assert run(one_filter_segment("s", f)) == expected


def test_event_filters_sharing_one_aggregate_keep_their_own_count():
    a = EventFilter(event="purchase", op="performed", count=EventCount(op="is", value=1))
    b = EventFilter(event="purchase", op="performed", count=EventCount(op="gte", value=2))
    assert a.aggregate_key() == b.aggregate_key()
    seg = Segment(key="s", name="s", groups=(Group(match="any", filters=(a, b)),))
    one = one_filter_segment("only_one", a)
    assert run(seg, one) == {"ann", "bob"}
    assert run(one) == {"bob"}


NY = FieldFilter(field="state", op="is", value="ny")
OVER_30 = FieldFilter(field="age", op="gt", value=30)


def segment(key: str, *groups: Group, match: str = "any") -> Segment:
    return Segment(key=key, name=key, match=match, groups=groups)


def test_group_matches():
    assert run(segment("s", Group(match="all", filters=(NY, OVER_30)))) == {"bob"}
    assert run(segment("s", Group(match="any", filters=(NY, OVER_30)))) == {"ann", "bob"}
    assert run(segment("s", Group(match="none", filters=(NY, OVER_30)))) == {"cy", "dee"}


def test_segment_matches():
    tagged = Group(filters=(FieldFilter(field="tags", op="has_any", value=("vip",)),))
    ny = Group(filters=(NY,))
    assert run(segment("s", ny, tagged)) == {"ann", "bob"}
    assert run(segment("s", ny, tagged, match="all")) == {"ann"}


def test_segment_references_across_waves():
    ny = one_filter_segment("ny", NY)
    not_ny = one_filter_segment("not_ny", SegmentFilter(segment="ny", op="is_not"))
    older_not_ny = segment("older_not_ny", Group(filters=(
        SegmentFilter(segment="not_ny", op="is"), FieldFilter(field="age", op="lt", value=30))))
    either = segment("either", Group(match="any", filters=(
        SegmentFilter(segment="ny", op="is"), SegmentFilter(segment="older_not_ny", op="is"))))
    assert run(not_ny, ny, older_not_ny, either) == {"cy", "dee"}
    assert run(older_not_ny, ny, not_ny) == {"cy"}
    assert run(either, ny, not_ny, older_not_ny) == {"ann", "bob", "cy"}


def test_universe_is_every_subscriber_whatever_the_status():
    assert run(field("email", "is_set")) == EVERYONE


# Issue 18 (9): integers above 2^53 have no exact double. Engines that compare a
# mixed list or an integer literal as doubles match the neighbouring value.
BIG = 2**53  # 9007199254740992
BIG_SUBSCRIBERS = [
    {"subscriber_id": "even", "email": "e@x", "status": "active", "loyalty_points": BIG, "score": float(BIG)},
    {"subscriber_id": "odd", "email": "o@x", "status": "active", "loyalty_points": BIG + 1,
     "score": float(BIG + 2)},
    {"subscriber_id": "max", "email": "m@x", "status": "active", "loyalty_points": 2**63 - 1, "score": 1e300},
    {"subscriber_id": "min", "email": "n@x", "status": "active", "loyalty_points": -(2**63), "score": -0.5},
    {"subscriber_id": "none", "email": "z@x", "status": "active"},
]
BIG_CASES = [
    ("loyalty_points", "in", (BIG + 1, 0.5), {"odd"}),
    ("loyalty_points", "not_in", (BIG + 1, 0.5), {"even", "max", "min", "none"}),
    ("loyalty_points", "in", (float(BIG), 0.5), {"even"}),
    ("loyalty_points", "is", BIG + 1, {"odd"}),
    ("loyalty_points", "between", (BIG + 0.5, BIG + 1), {"even", "odd"}),  # BIG + 0.5 is the double BIG
    ("loyalty_points", "between", (0.5, BIG + 0.5), {"even"}),
    ("loyalty_points", "gt", BIG + 0.5, {"odd", "max"}),
    ("loyalty_points", "gte", 2**63 - 1, {"max"}),
    ("loyalty_points", "gt", 2**63 - 1, set()),
    ("loyalty_points", "lte", -(2**63) + 1.5, {"min"}),  # -(2**63) + 1.5 is the double -(2**63)
    ("loyalty_points", "lt", -2.5, {"min"}),
    ("loyalty_points", "gt", -2.5, {"even", "odd", "max"}),
    ("loyalty_points", "lte", -(2**64), set()),
    ("loyalty_points", "gt", -(2**64), {"even", "odd", "max", "min"}),
    ("loyalty_points", "is", 2**64, set()),
    ("loyalty_points", "in", (1e300, -(2**70)), set()),
    ("score", "is", BIG + 1, set()),
    ("score", "in", (BIG + 1, BIG + 2, 0.5), {"odd"}),
    ("score", "not_in", (BIG + 1, 0.5), {"even", "odd", "max", "min", "none"}),
    ("score", "gt", BIG + 1, {"odd", "max"}),
    ("score", "gte", BIG + 1, {"odd", "max"}),
    ("score", "lt", BIG + 1, {"even", "min"}),
    ("score", "lte", BIG + 1, {"even", "min"}),
    ("score", "between", (BIG + 1, BIG + 3), {"odd"}),
    ("score", "lt", 10**400, {"even", "odd", "max", "min"}),
    ("score", "gt", 10**400, set()),
    ("score", "gte", -(10**400), {"even", "odd", "max", "min"}),
]


@pytest.mark.parametrize(("name", "op", "value", "expected"), BIG_CASES, ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(BIG_CASES)])
def test_integers_beyond_doubles_compare_exactly(name, op, value, expected):
    project = project_of(one_filter_segment("s", FieldFilter(field=name, op=op, value=value)))
    got = assert_all_agree(project, BIG_SUBSCRIBERS, [], AS_OF)
    assert {sid for _, sid in got} == expected
