"""One-line, human-readable text of filters, in the words of the YAML."""

from __future__ import annotations

from datetime import date, datetime

from ..segments.model import EventFilter, FieldFilter, Filter, SegmentFilter
from ..segments.operators import OPERATORS

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
    values = [_value(v) for v in f.value] if isinstance(f.value, list | tuple) else []
    return OPERATORS[f.op].text.format(field=f.field, op=f.op, value=_value(f.value), values=values)


def describe_count(f: EventFilter) -> str:
    return f"count {_COUNT_SIGNS[f.count.op]} {f.count.value}"


def describe_filter(f: Filter) -> str:
    if isinstance(f, FieldFilter):
        return describe_field_filter(f)
    if isinstance(f, SegmentFilter):
        return f"{'in' if f.op == 'is' else 'not in'} segment {f.segment}"
    parts = [f"{f.event} {f.op}"]  # an event filter: the model has three filter kinds
    if f.in_last_days is not None:
        parts.append(f"in the last {f.in_last_days} days")
    if f.where:
        parts.append("where " + " and ".join(describe_field_filter(w) for w in f.where))
    parts.append(f"({describe_count(f)})")
    return " ".join(parts)
