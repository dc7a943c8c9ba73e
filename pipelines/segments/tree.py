"""A segment's and/or/none tree, walked once for every backend.

    field filter     -> the backend's result of the filter
    event filter     -> its count comparison (`performed`), NOT for not_performed
    segment filter   -> the referenced segment's membership, NOT for is_not
    group / segment  -> AND (all), OR (any), NOT OR (none) of the above

The SQL and Polars compilers and the bitmap combiner (engine/combine.py) each
supply a `Backend`: the leaves and the three connectives, over never-null values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from ..errors import UserError
from .model import EventFilter, FieldFilter, Filter, Segment, SegmentFilter

X = TypeVar("X")
C = TypeVar("C")


@dataclass(frozen=True)
class Backend(Generic[X]):
    all: Callable[[Sequence[X]], X]  # AND (true for no parts)
    any: Callable[[Sequence[X]], X]  # OR (false for no parts)
    negate: Callable[[X], X]
    field: Callable[[FieldFilter], X]
    performed: Callable[[EventFilter], X]  # the filter's event count satisfies its `count`
    member: Callable[[str], X]  # membership of the segment of that key


def walk(segment: Segment, b: Backend[X]) -> X:
    """The segment's membership condition."""

    def leaf(f: Filter) -> X:
        if isinstance(f, FieldFilter):
            return b.field(f)
        if isinstance(f, SegmentFilter):
            member = b.member(f.segment)
            return b.negate(member) if f.op == "is_not" else member
        performed = b.performed(f)
        return b.negate(performed) if f.op == "not_performed" else performed

    def match(how: str, parts: Sequence[X]) -> X:
        if how == "all":
            return b.all(parts)
        return b.negate(b.any(parts)) if how == "none" else b.any(parts)

    return match(segment.match, [match(g.match, [leaf(f) for f in g.filters]) for g in segment.groups])


def field_leaf(build: Callable[[FieldFilter, str, C, datetime], X], fields: dict[str, str], table: str,
               column: Callable[[str], C], as_of: datetime,
               precomputed: Callable[[FieldFilter], X | None] | None = None) -> Callable[[FieldFilter], X]:
    """A field filter's result: the column `precomputed` names (engine/encoded.py), else
    `build(filter, field type, column(field), as_of)` over `table`'s `fields`."""

    def leaf(f: FieldFilter) -> X:
        done = precomputed(f) if precomputed is not None else None
        if done is not None:
            return done
        if f.field not in fields:
            raise UserError(f"unknown {table} field '{f.field}'")
        return build(f, fields[f.field], column(f.field), as_of)

    return leaf
