"""A tiny evaluator of the segment language written from the spec alone
(segment-language.md, "Semantics"), in plain Python: no sqlglot, DuckDB or
Polars. The differential tests check every engine against it.

Rows are dicts of Python values: str / int / float / bool / date / naive
datetime (UTC) / list of str, or None when missing. It is slow on purpose:
obvious code, one subscriber at a time.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from pipelines.segments.model import EventFilter, FieldFilter, Project, Segment, SegmentFilter

# Rule 3, spelled out: negative operator -> its positive partner.
COMPLEMENTS = {
    "is_not": "is",
    "not_in": "in",
    "not_contains": "contains",
    "has_none": "has_any",
    "is_not_set": "is_set",
    "not_in_last_days": "in_last_days",
}


def _days_before(as_of: datetime, days: int) -> datetime:
    try:
        return as_of - timedelta(days=days)
    except OverflowError:
        return datetime.min


def fold(text: str) -> str:
    """Rule 4's lower-casing, as the project documents it (pipelines/segments/case.py):
    'İ' is 'i', and the final sigma 'ς' is 'σ', so every engine agrees."""
    return text.replace("İ", "i").lower().replace("ς", "σ")


def field_holds(op: str, field_type: str, expected: Any, actual: Any, as_of: datetime) -> bool:
    """Does `field op expected` hold for a subscriber (or event) whose value is `actual`?"""
    if op in COMPLEMENTS:
        return not field_holds(COMPLEMENTS[op], field_type, expected, actual, as_of)
    if field_type == "list":
        tags = [fold(t) for t in (actual or []) if t is not None]  # missing list = empty list
        if op == "is_set":
            return len(tags) > 0
        wanted = [fold(v) for v in expected]
        if op == "has_any":
            return any(w in tags for w in wanted)
        if op == "has_all":
            return all(w in tags for w in wanted)
        raise ValueError(op)
    if op == "is_set":
        return actual is not None
    if actual is None:
        return False  # rule 2: a positive operator on a missing value does not hold
    if field_type == "string":
        value = fold(actual)
        if op == "is":
            return value == fold(expected)
        if op == "in":
            return value in [fold(e) for e in expected]
        if op == "contains":
            return fold(expected) in value
        if op == "starts_with":
            return value.startswith(fold(expected))
        if op == "ends_with":
            return value.endswith(fold(expected))
    if field_type in ("integer", "number"):
        if op == "is":
            return actual == expected
        if op == "in":
            return any(actual == e for e in expected)
        if op == "gt":
            return actual > expected
        if op == "gte":
            return actual >= expected
        if op == "lt":
            return actual < expected
        if op == "lte":
            return actual <= expected
        if op == "between":
            return expected[0] <= actual <= expected[1]
    if field_type == "boolean" and op == "is":
        return actual is expected
    if field_type in ("date", "timestamp"):
        day = actual if field_type == "date" else actual.date()
        instant = datetime.combine(actual, time()) if field_type == "date" else actual
        if op == "before":
            return day < expected
        if op == "after":
            return day > expected
        if op == "on":
            return day == expected
        if op == "between":
            return expected[0] <= day <= expected[1]
        if op == "in_last_days":
            return _days_before(as_of, expected) <= instant <= as_of
    raise ValueError(f"operator {op} on {field_type}")


def count_holds(op: str, expected: int, n: int) -> bool:
    return {"gt": n > expected, "gte": n >= expected, "lt": n < expected, "lte": n <= expected, "is": n == expected}[op]


def _event_counts(f: EventFilter, own_events: list[dict], project: Project, as_of: datetime) -> int:
    n = 0
    for e in own_events:
        if e["event"] != f.event or e["occurred_at"] > as_of:
            continue
        if f.in_last_days is not None and e["occurred_at"] < _days_before(as_of, f.in_last_days):
            continue
        if all(
            field_holds(w.op, project.catalog.event[w.field], w.value, e.get(w.field), as_of) for w in f.where
        ):
            n += 1
    return n


def reference_membership(
    project: Project, subscribers: list[dict], events: list[dict], as_of: datetime
) -> set[tuple[str, str]]:
    """{(segment, subscriber_id)} for every member of every segment."""
    events_of: dict[str, list[dict]] = {}
    for e in events:
        events_of.setdefault(e["subscriber_id"], []).append(e)
    memo: dict[tuple[str, str], bool] = {}

    def in_segment(key: str, sub: dict) -> bool:
        cache_key = (key, sub["subscriber_id"])
        if cache_key not in memo:
            memo[cache_key] = segment_holds(project.segments[key], sub)
        return memo[cache_key]

    def filter_holds(f: Any, sub: dict) -> bool:
        if isinstance(f, FieldFilter):
            return field_holds(f.op, project.catalog.subscriber[f.field], f.value, sub.get(f.field), as_of)
        if isinstance(f, SegmentFilter):
            member = in_segment(f.segment, sub)
            return not member if f.op == "is_not" else member
        if isinstance(f, EventFilter):
            n = _event_counts(f, events_of.get(sub["subscriber_id"], []), project, as_of)
            performed = count_holds(f.count.op, f.count.value, n)
            return not performed if f.op == "not_performed" else performed
        raise TypeError(f)

    def segment_holds(seg: Segment, sub: dict) -> bool:
        results = []
        for group in seg.groups:
            held = [filter_holds(f, sub) for f in group.filters]
            if group.match == "all":
                results.append(all(held))
            elif group.match == "any":
                results.append(any(held))
            else:  # none: no filter holds
                results.append(not any(held))
        return all(results) if seg.match == "all" else any(results)

    return {(key, sub["subscriber_id"]) for key in project.segments for sub in subscribers if in_segment(key, sub)}


__all__ = ["COMPLEMENTS", "count_holds", "field_holds", "reference_membership"]
