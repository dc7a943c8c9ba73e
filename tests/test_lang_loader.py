"""Loading definitions into the model: discovery, normalization, positions."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from pipelines.segments.fields import STANDARD_EVENT_FIELDS, STANDARD_SUBSCRIBER_FIELDS
from pipelines.segments.loader import load_project, load_segment_file
from pipelines.segments.model import (
    Audience,
    EventCount,
    EventFilter,
    FieldFilter,
    Group,
    Segment,
    SegmentFilter,
)

EXAMPLES = Path(__file__).resolve().parent / "fixtures" / "spec_examples" / "segment_defs"
OK_SEGMENT = "name: Fine\ngroups:\n  - filters:\n      - {field: state, op: is, value: NY}\n"


def write_defs(root: Path, files: dict[str, str]) -> Path:
    for relative, content in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    return root


def meaning(node):
    """What a node means, without its position and path (model equality compares those too)."""
    if isinstance(node, tuple | list):
        return [meaning(n) for n in node]
    return (type(node).__name__, node.model_dump())


def only_filter(segment: Segment):
    (group,) = segment.groups
    (flt,) = group.filters
    return flt


# -- the spec's examples ---------------------------------------------------------------


@pytest.fixture(scope="module")
def examples():
    project, problems = load_project(EXAMPLES)
    assert problems == []
    return project


def test_examples_load_every_file(examples) -> None:
    assert sorted(examples.segments) == sorted(
        p.stem for p in EXAMPLES.glob("*.yaml") if not p.name.startswith("_"))
    assert sorted(examples.audiences) == sorted(p.stem for p in (EXAMPLES / "audiences").glob("*.yaml"))


def test_example_catalog(examples) -> None:
    catalog = examples.catalog
    assert {k: t for k, t in catalog.subscriber.items() if k not in STANDARD_SUBSCRIBER_FIELDS} == {
        "loyalty_points": "integer", "vip": "boolean", "birthday": "date"}
    assert {k: t for k, t in catalog.event.items() if k not in STANDARD_EVENT_FIELDS} == {"coupon": "string"}
    assert examples.catalog.subscriber["state"] == "string"


def test_example_field_and_list_filters(examples) -> None:
    ny = examples.segments["subscribers_in_new_york"]
    assert ny.name == "Subscribers in New York"
    assert ny.description == "Everyone whose location is New York State, for local events."
    assert ny.match == "any" and ny.groups[0].match == "all"  # the defaults
    assert meaning(only_filter(ny)) == meaning(FieldFilter(field="state", op="is", value="NY"))
    webinar = examples.segments["webinar_attendees"]
    assert webinar.description is None
    assert meaning(only_filter(webinar)) == meaning(
        FieldFilter(field="tags", op="has_any", value=("webinar-attendee", "webinar-2026")))


def test_example_event_filters(examples) -> None:
    active = only_filter(examples.segments["active_users"])
    assert meaning(active) == meaning(EventFilter(event="purchase", op="performed", in_last_days=30,
                                                 count=EventCount(op="gte", value=1)))
    engaged = examples.segments["engaged_subscribers"]
    assert engaged.groups[0].match == "any"
    assert [(f.event, f.in_last_days) for f in engaged.groups[0].filters] == [("email_open", 90), ("email_click", 90)]


def test_example_multi_group(examples) -> None:
    new = examples.segments["new_customers"]
    assert new.match == "all"
    first, second = new.groups
    assert meaning(first.filters) == meaning((
        FieldFilter(field="created_at", op="in_last_days", value=30),
        EventFilter(event="purchase", op="performed", count=EventCount(op="is", value=1)),
    ))
    assert second.match == "any"
    assert meaning(second.filters) == meaning((
        FieldFilter(field="signup_form", op="is", value="Checkout"),
        FieldFilter(field="tags", op="has_any", value=("new-customer",)),
    ))


def test_example_segment_references(examples) -> None:
    seg = examples.segments["ny_webinar_not_customers"]
    assert meaning(seg.groups[0].filters) == meaning((
        SegmentFilter(segment="subscribers_in_new_york", op="is"),
        SegmentFilter(segment="webinar_attendees", op="is"),
        SegmentFilter(segment="active_users", op="is_not"),
    ))
    assert seg.references() == ["subscribers_in_new_york", "webinar_attendees", "active_users"]


def test_example_audience(examples) -> None:
    assert meaning(examples.audiences["nyc_meetup_invite"]) == meaning(Audience(
        key="nyc_meetup_invite", name="NYC meetup invitation",
        include=("subscribers_in_new_york", "webinar_attendees"), exclude=("active_users",),
        fields=("email", "first_name", "city")))
    assert examples.audiences["nyc_meetup_invite"].path == str(EXAMPLES / "audiences" / "nyc_meetup_invite.yaml")


# -- discovery -----------------------------------------------------------------------------


def test_discovery_rules(tmp_path: Path) -> None:
    defs = write_defs(tmp_path / "defs", {
        "top.yaml": OK_SEGMENT,
        "a/b/deep.yaml": OK_SEGMENT,
        "a/audiences/not_an_audience.yaml": OK_SEGMENT,  # only the root audiences/ folder holds audiences
        "audiences/send.yaml": "include: [top, deep]\n",
        "audiences/2026/q1/launch.yaml": "name: Launch\ndescription: Spring\ninclude: [top]\n",
        "_draft.yaml": "broken: [",  # `_` files are configuration; only the root _fields.yaml is read
        "a/_fields.yaml": "subscriber_fields: {ignored: string}\n",
        "notes.yml": "not: [a definition",
        ".hidden/x.yaml": "broken: [",
    })
    project, problems = load_project(defs)
    assert problems == []
    assert sorted(project.segments) == ["deep", "not_an_audience", "top"]
    assert sorted(project.audiences) == ["launch", "send"]
    assert project.catalog.subscriber == STANDARD_SUBSCRIBER_FIELDS
    assert project.segments["deep"].path == str(defs / "a/b/deep.yaml")
    send, launch = project.audiences["send"], project.audiences["launch"]
    assert (send.name, send.description, send.exclude, send.fields) == ("send", None, (), ())
    assert (launch.name, launch.description) == ("Launch", "Spring")


def test_empty_folder(tmp_path: Path) -> None:
    project, problems = load_project(tmp_path)
    assert (project.segments, project.audiences, problems) == ({}, {}, [])


def test_deleting_a_file_deletes_the_segment(tmp_path: Path) -> None:
    defs = shutil.copytree(EXAMPLES, tmp_path / "defs")
    (defs / "webinar_attendees.yaml").unlink()
    (defs / "ny_webinar_not_customers.yaml").unlink()
    project, problems = load_project(defs)
    assert "webinar_attendees" not in project.segments
    # The audience that includes it now names an unknown segment.
    assert [str(p) for p in problems] == [
        f"{defs}/audiences/nyc_meetup_invite.yaml:2:36: unknown segment 'webinar_attendees'"]


# -- normalization -----------------------------------------------------------------------


def value_of(tmp_path: Path, field: str, op: str, value: str, fields: str = "") -> object:
    files = {"s.yaml": f"name: T\ngroups:\n  - filters:\n      - {{field: {field}, op: {op}, value: {value}}}\n"}
    if fields:
        files["_fields.yaml"] = fields
    project, problems = load_project(write_defs(tmp_path / "defs", files))
    assert problems == []
    return only_filter(project.segments["s"]).value


@pytest.mark.parametrize(("field", "op", "value", "expected"), [
    # A plain YAML number on a string field keeps the text the user typed.
    ("postal_code", "is", "02134", "02134"),
    ("postal_code", "in", "[02134, '10001', 1e3]", ("02134", "10001", "1e3")),
    ("country", "is", "NO", "NO"),  # YAML 1.2: not a boolean
    ("signup_form", "is", "2024-01-01", "2024-01-01"),
    ("age", "gt", "30", 30),
    ("age", "between", "[18, 64.5]", (18, 64.5)),
    ("age", "in", "[1, 2, 3]", (1, 2, 3)),
    ("created_at", "before", "2024-01-31", date(2024, 1, 31)),
    ("created_at", "after", "'2024-01-31'", date(2024, 1, 31)),
    ("created_at", "between", "[2024-01-01, '2024-12-31']", (date(2024, 1, 1), date(2024, 12, 31))),
    ("created_at", "in_last_days", "7", 7),
    ("tags", "has_all", "[vip, 2026]", ("vip", "2026")),
    ("state", "is_set", "null", None),
])
def test_values_are_normalized(tmp_path: Path, field: str, op: str, value: str, expected: object) -> None:
    if op == "is_set":
        project, problems = load_project(write_defs(tmp_path / "defs", {
            "s.yaml": f"name: T\ngroups:\n  - filters:\n      - {{field: {field}, op: {op}}}\n"}))
        assert problems == []
        got = only_filter(project.segments["s"]).value
    else:
        got = value_of(tmp_path, field, op, value)
    assert got == expected
    assert type(got) is type(expected)
    if isinstance(got, tuple):
        assert [type(v) for v in got] == [type(v) for v in expected]  # type: ignore[union-attr]


def test_custom_fields_are_typed_by_declaration(tmp_path: Path) -> None:
    fields = "subscriber_fields:\n  vip: boolean\n  points: number\n  birthday: date\n"
    assert value_of(tmp_path / "1", "vip", "is", "false", fields) is False
    assert value_of(tmp_path / "2", "points", "lte", "10", fields) == 10
    assert value_of(tmp_path / "3", "birthday", "on", "2000-02-29", fields) == date(2000, 2, 29)


def test_custom_event_field_in_where(tmp_path: Path) -> None:
    defs = write_defs(tmp_path / "defs", {
        "_fields.yaml": "event_fields:\n  coupon: string\n",
        "s.yaml": "name: T\ngroups:\n  - filters:\n      - event: purchase\n        op: not_performed\n"
                  "        where:\n          - {field: coupon, op: starts_with, value: BF}\n"
                  "          - {field: amount, op: gte, value: 9.5}\n",
    })
    project, problems = load_project(defs)
    assert problems == []
    flt = only_filter(project.segments["s"])
    assert flt.op == "not_performed" and flt.in_last_days is None and meaning(flt.count) == meaning(EventCount())
    assert meaning(flt.where) == meaning((FieldFilter(field="coupon", op="starts_with", value="BF"),
                                          FieldFilter(field="amount", op="gte", value=9.5)))


def test_redeclaring_a_standard_field_with_its_own_type_is_allowed(tmp_path: Path) -> None:
    defs = write_defs(tmp_path / "defs", {"_fields.yaml": "subscriber_fields:\n  age: integer\n"})
    project, problems = load_project(defs)
    assert problems == [] and project.catalog.subscriber["age"] == "integer"
    assert project.catalog.subscriber == STANDARD_SUBSCRIBER_FIELDS


def test_formatting_and_comments_do_not_change_the_hash(tmp_path: Path) -> None:
    flow = "name: T\ngroups: [{filters: [{field: age, op: between, value: [1, 2]}]}]\n"
    block = ("# a comment\nname: 'T'\nmatch: any\ngroups:\n  - match: all\n    filters:\n"
             "      - field: age   # years\n        op: between\n        value:\n          - 1\n          - 2\n")
    changed = flow.replace("[1, 2]", "[1, 3]")
    hashes = []
    for i, text in enumerate((flow, block, changed)):
        project, problems = load_project(write_defs(tmp_path / str(i), {"s.yaml": text}))
        assert problems == []
        hashes.append(project.segments["s"].definition_sha256())
    assert hashes[0] == hashes[1] != hashes[2]


def test_model_tree_is_made_of_model_types(examples) -> None:
    for seg in examples.segments.values():
        assert all(isinstance(g, Group) for g in seg.groups)
        assert all(isinstance(f, FieldFilter | SegmentFilter | EventFilter) for g in seg.groups for f in g.filters)


# -- other entry points --------------------------------------------------------------------


def test_load_segment_file_outside_the_folder(tmp_path: Path, examples) -> None:
    path = write_defs(tmp_path, {"try_this.yaml": (
        "name: Try\ngroups:\n  - filters:\n      - {segment: active_users, op: is_not}\n"
        "      - {field: loyalty_points, op: gte, value: 100}\n")}) / "try_this.yaml"
    segment, problems = load_segment_file(path, examples.catalog, examples.segments)
    assert problems == []
    assert segment is not None and segment.key == "try_this" and segment.path == str(path)
    assert meaning(segment.groups[0].filters[1]) == meaning(FieldFilter(field="loyalty_points", op="gte", value=100))
