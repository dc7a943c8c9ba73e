"""A segment's and/or/none tree, walked once for every backend.

    field filter     -> the backend's result of the filter
    event filter     -> its count comparison (`performed`), NOT for not_performed
    segment filter   -> the referenced segment's membership, NOT for is_not
    group / segment  -> AND (all), OR (any), NOT OR (none) of the above

The bitmap combiner (engine/combine.py) supplies a `Backend` (leaves and connectives
over never-null values); the SQL and Polars compilers a `Language` for the builders below.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from ..errors import UserError
from .fields import FieldCatalog
from .model import EventFilter, FieldFilter, Filter, Segment, SegmentFilter
from .operators import operator_for, window_start
from .utc import naive_utc

X = TypeVar("X")


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


@dataclass(frozen=True)
class Language:
    """What a compiler (to_sql.py, to_polars.py) brings to the builders below and the
    operators' (operators.py): connectives, literals, columns, forms it spells its own way."""

    all: Callable[[Sequence[Any]], Any]  # AND (true for no parts)
    any: Callable[[Sequence[Any]], Any]  # OR (false for no parts)
    negate: Callable[[Any], Any]
    two_valued: Callable[[Any], Any]  # NULL (unknown, e.g. a missing value) becomes false
    compare: Callable[[str, Any, Any], Any]  # `a op b` for is, gt, gte, lt, lte
    value: Callable[[Any, str], Any]  # a literal of a field type
    column: Callable[[str], Any]  # a subscriber or event field
    copy: Callable[[Any], Any]  # an expression used a second time
    fold: Callable[[Any], Any]  # case-folded with case.py's table
    is_set: Callable[[Any, str], Any]  # present; a list: not empty (NULL for a missing list)
    never: Callable[[Any], Any]  # false for every row
    isin: Callable[[Any, Sequence[Any], str], Any]  # `a IN values` (Python values of a field type)
    between: Callable[[Any, Any, Any], Any]  # low <= a <= high
    cast: Callable[[Any, str], Any]  # a timestamp as its UTC "date", a date as its midnight "timestamp"
    text_test: Callable[[str, Any, Any], Any]  # `contains`, `starts_with` or `ends_with`
    has: Callable[[str, Any, Sequence[str]], Any]  # a list holds "any" / "all" of the folded tags


def field_predicate(lang: Language, f: FieldFilter, field_type: str, column: Any, as_of: datetime) -> Any:
    """A two-valued predicate for one field filter on `column` (of `field_type`): a
    negative operator is NOT of its positive partner made two-valued (spec rule 3)."""
    op = operator_for(f, field_type)
    predicate = op.build(lang, column, f.value, field_type, naive_utc(as_of))
    if field_type not in op.null_safe:  # a builder that may return NULL
        predicate = lang.two_valued(predicate)
    return lang.negate(predicate) if op.negation_of else predicate


def _field_leaf(lang: Language, fields: dict[str, str], table: str, column: Callable[[str], Any],
                as_of: datetime, precomputed: Callable[[FieldFilter], Any] | None) -> Callable[..., Any]:
    """A field filter's result: the column `precomputed` names (engine/encoded.py), else
    its predicate over `table`'s `fields`."""

    def leaf(f: FieldFilter) -> Any:
        done = precomputed(f) if precomputed is not None else None
        if done is not None:
            return done
        if f.field not in fields:
            raise UserError(f"unknown {table} field '{f.field}'")
        return field_predicate(lang, f, fields[f.field], column(f.field), as_of)

    return leaf


def event_condition(lang: Language, f: EventFilter, catalog: FieldCatalog, as_of: datetime,
                    column: Callable[[str], Any] | None = None,
                    precomputed: Callable[[FieldFilter], Any] | None = None) -> Any:
    """Which event rows a filter counts: its name (exact), not after `as_of`, in the
    window, and every `where` filter (same operator semantics, over event fields)."""
    as_of, column = naive_utc(as_of), column or lang.column
    conditions = [lang.compare("is", column("event"), lang.value(f.event, "string")),
                  lang.compare("lte", column("occurred_at"), lang.value(as_of, "timestamp"))]
    if f.in_last_days is not None:
        start = lang.value(window_start(as_of, f.in_last_days), "timestamp")
        conditions.append(lang.compare("gte", column("occurred_at"), start))
    where = _field_leaf(lang, catalog.event, "event", column, as_of, precomputed)
    return lang.all([*conditions, *(where(w) for w in f.where)])


def segment_predicate(lang: Language, segment: Segment, catalog: FieldCatalog, as_of: datetime,
                      event_count: Callable[[EventFilter], Any], member_of: Callable[[str], Any],
                      column: Callable[[str], Any] | None = None) -> Any:
    """The segment's membership condition for one subscriber row. The resolvers say
    where event counts and other segments' membership (both never NULL) come from,
    so the standalone query and the engines share this builder."""
    field = _field_leaf(lang, catalog.subscriber, "subscriber", column or lang.column, as_of, None)

    def performed(f: EventFilter) -> Any:
        return lang.compare(f.count.op, event_count(f), lang.value(f.count.value, "integer"))

    return walk(segment, Backend(lang.all, lang.any, lang.negate, field, performed, member_of))
