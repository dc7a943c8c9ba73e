"""One-line, human-readable text of filters and groups, in the words of the YAML."""

from __future__ import annotations

from datetime import date, datetime

from ..segments.model import EventFilter, FieldFilter, Group, SegmentFilter

_COUNT_SIGNS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "is": "="}


def _value(value) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def describe_field_filter(f: FieldFilter) -> str:
    if f.op in ("is_set", "is_not_set"):
        return f"{f.field} {f.op}"
    if f.op == "between":
        low, high = f.value
        return f"{f.field} between {_value(low)} and {_value(high)}"
    return f"{f.field} {f.op} {_value(f.value)}"


def describe_count(f: EventFilter) -> str:
    return f"count {_COUNT_SIGNS[f.count.op]} {f.count.value}"


def describe_event_filter(f: EventFilter) -> str:
    parts = [f"{f.event} {f.op}"]
    if f.in_last_days is not None:
        parts.append(f"in the last {f.in_last_days} days")
    if f.where:
        parts.append("where " + " and ".join(describe_field_filter(w) for w in f.where))
    parts.append(f"({describe_count(f)})")
    return " ".join(parts)


def describe_filter(f) -> str:
    if isinstance(f, FieldFilter):
        return describe_field_filter(f)
    if isinstance(f, SegmentFilter):
        return f"{'in' if f.op == 'is' else 'not in'} segment {f.segment}"
    if isinstance(f, EventFilter):
        return describe_event_filter(f)
    raise TypeError(f"unknown filter {f!r}")


MATCH_WORDS = {
    "all": "all of these hold",
    "any": "any of these holds",
    "none": "none of these holds",
}


def describe_group_match(group: Group) -> str:
    return MATCH_WORDS[group.match]


def describe_segment_match(match: str) -> str:
    return "all groups hold" if match == "all" else "any group holds"
