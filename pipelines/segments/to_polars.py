"""Segment model -> Polars expressions, with the same shape as `to_sql.py`.

One builder per operator family and positive operator; a negative operator is
`~` of its positive partner after `fill_null(False)` (spec rule 3), so missing
values are in every negative operator and in no positive one.

Values enter as literals only. Case-insensitive matching folds both sides
with case.py's table (values in Python, columns with `replace_many`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

import polars as pl

from ..errors import UserError
from .case import FOLD, fold
from .fields import NEGATION_OF, FieldCatalog
from .model import EventCount, EventFilter, FieldFilter, Filter, Group, Segment, SegmentFilter
from .numeric import exact_bound, exact_members
from .plan import naive_utc, window_start

ColumnResolver = Callable[[str], pl.Expr]
EventCountResolver = Callable[[EventFilter], pl.Expr]
MemberResolver = Callable[[str], pl.Expr]
# A field filter evaluated ahead of the query (pipelines/engine/encoded.py): its
# never-null result column, or None to build the filter here.
PrecomputedResolver = Callable[[FieldFilter], pl.Expr | None]

_TIMESTAMP = pl.Datetime("us")


def _col(name: str) -> pl.Expr:
    return pl.col(name)


def _lowered(values: Sequence[str]) -> list[str]:
    return [fold(v) for v in values]


def _lowered_one(value: str) -> pl.Expr:
    return pl.lit(fold(value), dtype=pl.String)


_FOLD_FROM, _FOLD_TO = list(FOLD), list(FOLD.values())


def _lower(c: pl.Expr) -> pl.Expr:
    """Case-folded with case.py's table (Polars' own to_lowercase knows newer letters)."""
    return c.str.replace_many(_FOLD_FROM, _FOLD_TO)


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return value


def _date(value: Any) -> date:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise TypeError(f"expected a date, got {value!r}")
    return value


def _ts(value: datetime) -> pl.Expr:
    return pl.lit(value, dtype=_TIMESTAMP)


def all_of(conditions: Sequence[pl.Expr]) -> pl.Expr:
    return pl.all_horizontal(conditions) if conditions else pl.lit(True)


def any_of(conditions: Sequence[pl.Expr]) -> pl.Expr:
    return pl.any_horizontal(conditions) if conditions else pl.lit(False)


# --------------------------------------------------------------------------- operator families
# Positive predicates, possibly NULL on missing values. (column, value, field_type, as_of)

Builder = Callable[[pl.Expr, Any, str, datetime], pl.Expr]


def _is_set(c: pl.Expr, _v: Any, _t: str, _a: datetime) -> pl.Expr:
    return c.is_not_null()


_STRING: dict[str, Builder] = {
    "is": lambda c, v, t, a: _lower(c) == _lowered_one(v),
    "in": lambda c, v, t, a: _lower(c).is_in(_lowered(v)),
    "contains": lambda c, v, t, a: _lower(c).str.contains(_lowered_one(v), literal=True),
    "starts_with": lambda c, v, t, a: _lower(c).str.starts_with(_lowered_one(v)),
    "ends_with": lambda c, v, t, a: _lower(c).str.ends_with(_lowered_one(v)),
    "is_set": _is_set,
}


_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "is": operator.eq,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def _compare(op: str) -> Builder:
    """`c op v`, compared against a value of the column's own type (numeric.py: exact)."""
    def build(c: pl.Expr, v: Any, t: str, a: datetime) -> pl.Expr:
        bound = exact_bound(op, _number(v), t)
        if isinstance(bound, bool):
            return c.is_not_null() if bound else _never(c)
        return _COMPARISONS[bound[0]](c, _literal(bound[1], t))

    return build


def _never(c: pl.Expr) -> pl.Expr:
    """False for every row (as long as the column: a bare literal is one row)."""
    return c.is_not_null() & pl.lit(False)


def _literal(value: int | float, field_type: str) -> pl.Expr:
    return pl.lit(value, dtype=pl.Int64 if field_type == "integer" else pl.Float64)


def _between(c: pl.Expr, v: Any, t: str, a: datetime) -> pl.Expr:
    return _compare("gte")(c, v[0], t, a) & _compare("lte")(c, v[1], t, a)


def _in(c: pl.Expr, v: Any, t: str, a: datetime) -> pl.Expr:
    members = exact_members([_number(x) for x in v], t)
    if not members:
        return _never(c)
    return c.is_in([int(m) if t == "integer" else float(m) for m in members])  # the column's type


_NUMBER: dict[str, Builder] = {
    "is": _compare("is"),
    "in": _in,
    "gt": _compare("gt"),
    "gte": _compare("gte"),
    "lt": _compare("lt"),
    "lte": _compare("lte"),
    "between": _between,
    "is_set": _is_set,
}


def _boolean_is(c: pl.Expr, v: Any, t: str, a: datetime) -> pl.Expr:
    if not isinstance(v, bool):
        raise TypeError(f"expected a boolean, got {v!r}")
    return c == v


_BOOLEAN: dict[str, Builder] = {"is": _boolean_is, "is_set": _is_set}


def _utc_day(c: pl.Expr, field_type: str) -> pl.Expr:
    return c if field_type == "date" else c.dt.date()


def _instant(c: pl.Expr, field_type: str) -> pl.Expr:
    """A date means its midnight UTC."""
    return c if field_type == "timestamp" else c.cast(_TIMESTAMP)


def _in_last_days(c: pl.Expr, days: int, t: str, as_of: datetime) -> pl.Expr:
    at = _instant(c, t)
    return (at >= _ts(window_start(as_of, days))) & (at <= _ts(as_of))


_TEMPORAL: dict[str, Builder] = {
    "before": lambda c, v, t, a: _utc_day(c, t) < _date(v),
    "after": lambda c, v, t, a: _utc_day(c, t) > _date(v),
    "on": lambda c, v, t, a: _utc_day(c, t) == _date(v),
    "between": lambda c, v, t, a: _utc_day(c, t).is_between(_date(v[0]), _date(v[1]), closed="both"),
    "in_last_days": _in_last_days,
    "is_set": _is_set,
}


def _lowered_list(c: pl.Expr) -> pl.Expr:
    return c.list.eval(_lower(pl.element()))


def _has(c: pl.Expr, values: Sequence[str], combine: Callable[[Sequence[pl.Expr]], pl.Expr]) -> pl.Expr:
    tags = _lowered_list(c)
    return combine([tags.list.contains(pl.lit(v, dtype=pl.String)) for v in _lowered(values)])


_LIST: dict[str, Builder] = {
    # A missing list is the empty list: NULL results are made False by the caller.
    "has_any": lambda c, v, t, a: _has(c, v, pl.any_horizontal),
    "has_all": lambda c, v, t, a: _has(c, v, pl.all_horizontal),
    "is_set": lambda c, v, t, a: c.list.len() > 0,
}

_BUILDERS: dict[str, dict[str, Builder]] = {
    "string": _STRING,
    "integer": _NUMBER,
    "number": _NUMBER,
    "boolean": _BOOLEAN,
    "date": _TEMPORAL,
    "timestamp": _TEMPORAL,
    "list": _LIST,
}


def field_predicate(f: FieldFilter, field_type: str, column: pl.Expr, as_of: datetime) -> pl.Expr:
    """A never-null boolean expression for one field filter on `column`."""
    positive = NEGATION_OF.get(f.op, f.op)
    try:
        builder = _BUILDERS[field_type][positive]
    except KeyError:
        raise UserError(f"operator '{f.op}' does not apply to {field_type} field '{f.field}'") from None
    predicate = builder(column, f.value, field_type, naive_utc(as_of)).fill_null(False)
    return ~predicate if f.op in NEGATION_OF else predicate


# --------------------------------------------------------------------------- events


def count_predicate(n: pl.Expr, count: EventCount) -> pl.Expr:
    return _COMPARISONS[count.op](n, count.value)


def event_condition(f: EventFilter, catalog: FieldCatalog, as_of: datetime, column: ColumnResolver = _col,
                    precomputed: PrecomputedResolver | None = None) -> pl.Expr:
    """Which event rows a filter counts (never null): exact name, not after
    `as_of`, in the window, and every `where` filter."""
    as_of = naive_utc(as_of)
    conditions = [column("event") == pl.lit(f.event, dtype=pl.String), column("occurred_at") <= _ts(as_of)]
    if f.in_last_days is not None:
        conditions.append(column("occurred_at") >= _ts(window_start(as_of, f.in_last_days)))
    for w in f.where:
        done = precomputed(w) if precomputed is not None else None
        conditions.append(
            done if done is not None
            else field_predicate(w, _field_type(catalog.event, w.field, "event"), column(w.field), as_of)
        )
    return all_of(conditions).fill_null(False)


def event_predicate(f: EventFilter, n: pl.Expr) -> pl.Expr:
    performed = count_predicate(n, f.count)
    return ~performed if f.op == "not_performed" else performed


# --------------------------------------------------------------------------- segments


def _field_type(fields: dict[str, str], name: str, table: str) -> str:
    try:
        return fields[name]
    except KeyError:
        raise UserError(f"unknown {table} field '{name}'") from None


def filter_predicate(
    f: Filter,
    catalog: FieldCatalog,
    as_of: datetime,
    event_count: EventCountResolver,
    member_of: MemberResolver,
    column: ColumnResolver = _col,
    precomputed: PrecomputedResolver | None = None,
) -> pl.Expr:
    if isinstance(f, FieldFilter):
        done = precomputed(f) if precomputed is not None else None
        if done is not None:
            return done
        return field_predicate(f, _field_type(catalog.subscriber, f.field, "subscriber"), column(f.field), as_of)
    if isinstance(f, SegmentFilter):
        member = member_of(f.segment)
        return ~member if f.op == "is_not" else member
    if isinstance(f, EventFilter):
        return event_predicate(f, event_count(f))
    raise TypeError(f"unknown filter {f!r}")


def combine(match: str, predicates: Sequence[pl.Expr]) -> pl.Expr:
    """all = AND, any = OR, none = NOT(any)."""
    if match == "all":
        return all_of(predicates)
    if match == "any":
        return any_of(predicates)
    if match == "none":
        return ~any_of(predicates)
    raise ValueError(f"unknown match '{match}'")


def group_predicate(
    group: Group,
    catalog: FieldCatalog,
    as_of: datetime,
    event_count: EventCountResolver,
    member_of: MemberResolver,
    column: ColumnResolver = _col,
    precomputed: PrecomputedResolver | None = None,
) -> pl.Expr:
    return combine(
        group.match,
        [filter_predicate(f, catalog, as_of, event_count, member_of, column, precomputed) for f in group.filters],
    )


def segment_predicate(
    segment: Segment,
    catalog: FieldCatalog,
    as_of: datetime,
    event_count: EventCountResolver,
    member_of: MemberResolver,
    column: ColumnResolver = _col,
    precomputed: PrecomputedResolver | None = None,
) -> pl.Expr:
    """The segment's membership condition (never null), given where event
    counts (never null) and other segments' membership (never null) come from."""
    return combine(
        segment.match,
        [group_predicate(g, catalog, as_of, event_count, member_of, column, precomputed) for g in segment.groups],
    )
