"""The field operators: everything the code knows about each one, in one row.

Code that needs something about an operator (segment-language.md, "Field
filters") looks its `Operator` up here, so adding one means registering a row:

- `types`: the field types it applies to (in the order each type lists them);
- `value`: the rule reading its YAML `value` (value_rules.py); None: it takes none;
- `sql` / `polars`: builders of its POSITIVE predicate from (column, value, field
  type, as_of); it may be NULL on a missing value (tree.py makes it two-valued);
- `text`: how `segments explain` words it (commands/describe.py);
- `null_safe`: field types on which `sql` is never NULL (no COALESCE needed);
- `per_value`: worth evaluating once per distinct value and broadcasting
  (engine/encoded.py); on a list field only with `tags` ("any" or "all");
- `crossing`: set for an operator whose result depends on the run's `as_of`: the
  stored values whose result may differ between two clocks (engine/incremental.py).

A negative operator (`negation`) is the exact complement of its positive partner
(spec rule 3): it shares its row and is NOT of the partner's two-valued result.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import polars as pl
from sqlglot import exp

from ..errors import UserError
from . import value_rules
from .case import FOLD, fold
from .dialects import (
    DATE,
    TIMESTAMP,
    boolean_literal,
    cast,
    date_literal,
    fold_sql,
    folded_literal,
    number_literal,
    timestamp_literal,
)
from .numeric import exact_bound, exact_members

if TYPE_CHECKING:  # the models are generated from this registry
    from .model import FieldFilter

# (column, value, field type, as_of) -> expression
Builder = Callable[[Any, Any, str, datetime], Any]
# (timestamp column, value, base as_of, as_of) -> condition
Crossing = Callable[[exp.Expr, Any, datetime, datetime], exp.Expr]

_SCALAR = ("string", "integer", "number", "boolean", "date", "timestamp")
_NUMERIC = ("integer", "number")
_TEMPORAL = ("date", "timestamp")

# `n op value` for the comparison words (numbers, event counts): SQL nodes, and
# Python operators (Polars expressions and numpy arrays overload them).
SQL_COMPARISONS: dict[str, type[exp.Binary]] = {
    "is": exp.EQ, "gt": exp.GT, "gte": exp.GTE, "lt": exp.LT, "lte": exp.LTE,
}
COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "is": operator.eq, "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le,
}


@dataclass(frozen=True)
class Operator:
    name: str
    types: tuple[str, ...]
    value: Callable[[str, Any], Any] | None
    sql: Builder
    polars: Builder
    text: str = "{field} {op} {value}"
    null_safe: tuple[str, ...] = ()
    per_value: bool = True
    tags: str | None = None
    crossing: Crossing | None = None
    negation_of: str | None = None


OPERATORS: dict[str, Operator] = {}


def register(op: Operator) -> Operator:
    if op.name in OPERATORS:
        raise ValueError(f"operator '{op.name}' is already registered")
    OPERATORS[op.name] = op
    return op


def negation(name: str, of: str) -> Operator:
    """The negative partner of the registered operator `of`, named `name`."""
    return replace(OPERATORS[of], name=name, negation_of=of)


def operator_for(f: FieldFilter, field_type: str) -> Operator:
    """The operator of `f`, which must apply to `field_type`."""
    op = OPERATORS.get(f.op)
    if op is None or field_type not in op.types:
        raise UserError(f"operator '{f.op}' does not apply to {field_type} field '{f.field}'")
    return op


def window_start(as_of: datetime, days: int) -> datetime:
    """`as_of - days` (exact 24-hour days: UTC has no DST), the start of an
    `in_last_days` window. Clamped to 0001-01-01 for windows reaching before the
    calendar starts: no stored value can be earlier, so the result is the same
    as an unbounded window."""
    try:
        return as_of - timedelta(days=days)
    except OverflowError:
        return datetime(1, 1, 1)


def operators_of_type(field_type: str) -> tuple[str, ...]:
    return tuple(op.name for op in OPERATORS.values() if field_type in op.types)


# --------------------------------------------------------------------------- SQL builders
# STRPOS/STARTS_WITH/ENDS_WITH, never LIKE: '%' and '_' in values are literal.


def _sql_is_set(c: exp.Expr, v: Any, t: str, a: datetime) -> exp.Expr:
    if t == "list":  # NULL for a missing list: made FALSE by the compiler
        return exp.GT(this=exp.ArraySize(this=c), expression=exp.Literal.number(0))
    return exp.Is(this=c, expression=exp.Not(this=exp.Null()))


def _sql_number(op: str) -> Builder:
    """`c op v`, compared against a value of the column's own type (numeric.py: exact)."""
    def build(c: exp.Expr, v: Any, t: str, a: datetime) -> exp.Expr:
        bound = exact_bound(op, v, t)
        if isinstance(bound, bool):
            return _sql_is_set(c, v, t, a) if bound else exp.false()
        return SQL_COMPARISONS[bound[0]](this=c, expression=number_literal(bound[1]))

    return build


def _sql_is(c: exp.Expr, v: Any, t: str, a: datetime) -> exp.Expr:
    if t == "string":
        return exp.EQ(this=fold_sql(c), expression=folded_literal(v))
    if t == "boolean":
        return exp.EQ(this=c, expression=boolean_literal(v))
    return _sql_number("is")(c, v, t, a)


def _sql_in(c: exp.Expr, v: Any, t: str, a: datetime) -> exp.Expr:
    if t == "string":
        return exp.In(this=fold_sql(c), expressions=[folded_literal(x) for x in v])
    members = exact_members(v, t)
    return exp.In(this=c, expressions=[number_literal(x) for x in members]) if members else exp.false()


def _sql_day(c: exp.Expr, field_type: str) -> exp.Expr:
    """The value's UTC calendar date (timestamps are naive UTC)."""
    return c if field_type == "date" else cast(c, DATE)


def _sql_on_day(node: type[exp.Binary]) -> Builder:
    return lambda c, v, t, a: node(this=_sql_day(c, t), expression=date_literal(v))


def _sql_between(c: exp.Expr, v: Any, t: str, a: datetime) -> exp.Expr:
    if t in _TEMPORAL:
        return exp.Between(this=_sql_day(c, t), low=date_literal(v[0]), high=date_literal(v[1]))
    low, high = exact_bound("gte", v[0], t), exact_bound("lte", v[1], t)
    if isinstance(low, bool) or isinstance(high, bool):
        return exp.and_(_sql_number("gte")(c, v[0], t, a), _sql_number("lte")(c.copy(), v[1], t, a), copy=False)
    return exp.Between(this=c, low=number_literal(low[1]), high=number_literal(high[1]))


def _sql_in_last_days(c: exp.Expr, days: int, t: str, as_of: datetime) -> exp.Expr:
    at = c if t == "timestamp" else cast(c, TIMESTAMP)  # a date means its midnight UTC
    return between_open(at, window_start(as_of, days), as_of, low_open=False, high_open=False)


def _sql_has(node: type[exp.Binary]) -> Builder:
    """`has_any` / `has_all` over the folded tags (a missing list is the empty list)."""
    def build(c: exp.Expr, v: Any, t: str, a: datetime) -> exp.Expr:
        var = exp.to_identifier("tag")
        tags = exp.Transform(this=c, expression=exp.Lambda(this=fold_sql(var.copy()), expressions=[var]))
        return node(this=tags, expression=exp.Array(expressions=[folded_literal(x) for x in v]))

    return build


def between_open(column: exp.Expr, low: datetime, high: datetime, *, low_open: bool,
                 high_open: bool) -> exp.Expr:
    lower = (exp.GT if low_open else exp.GTE)(this=column, expression=timestamp_literal(low))
    upper = (exp.LT if high_open else exp.LTE)(this=column.copy(), expression=timestamp_literal(high))
    return exp.and_(lower, upper, copy=False)


def _crossed_last_days(column: exp.Expr, days: int, base_as_of: datetime,
                       as_of: datetime) -> exp.Expr:
    """Values whose `in_last_days days` result may differ between base_as_of and as_of:
    [base - days, as_of - days) or (base, as_of]."""
    left = between_open(column, window_start(base_as_of, days), window_start(as_of, days),
                        low_open=False, high_open=True)
    entered = between_open(column.copy(), base_as_of, as_of, low_open=True, high_open=False)
    return exp.or_(left, entered, copy=False)


# --------------------------------------------------------------------------- Polars builders

PL_TIMESTAMP = pl.Datetime("us")
_FOLD_FROM, _FOLD_TO = list(FOLD), list(FOLD.values())


def fold_polars(c: pl.Expr) -> pl.Expr:
    """Case-folded with case.py's table (Polars' own to_lowercase knows newer letters)."""
    return c.str.replace_many(_FOLD_FROM, _FOLD_TO)


def _pl_folded(value: str) -> pl.Expr:
    return pl.lit(fold(value), dtype=pl.String)


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return value


def _date(value: Any) -> date:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise TypeError(f"expected a date, got {value!r}")
    return value


def _never(c: pl.Expr) -> pl.Expr:
    """False for every row (as long as the column: a bare literal is one row)."""
    return c.is_not_null() & pl.lit(False)


def _pl_is_set(c: pl.Expr, v: Any, t: str, a: datetime) -> pl.Expr:
    return c.list.len() > 0 if t == "list" else c.is_not_null()


def _pl_number(op: str) -> Builder:
    """`c op v`, compared against a value of the column's own type (numeric.py: exact)."""
    def build(c: pl.Expr, v: Any, t: str, a: datetime) -> pl.Expr:
        bound = exact_bound(op, _number(v), t)
        if isinstance(bound, bool):
            return c.is_not_null() if bound else _never(c)
        return COMPARISONS[bound[0]](c, pl.lit(bound[1], dtype=pl.Int64 if t == "integer" else pl.Float64))

    return build


def _pl_is(c: pl.Expr, v: Any, t: str, a: datetime) -> pl.Expr:
    if t == "string":
        return fold_polars(c) == _pl_folded(v)
    if t == "boolean":
        if not isinstance(v, bool):
            raise TypeError(f"expected a boolean, got {v!r}")
        return c == v
    return _pl_number("is")(c, v, t, a)


def _pl_in(c: pl.Expr, v: Any, t: str, a: datetime) -> pl.Expr:
    if t == "string":
        return fold_polars(c).is_in([fold(x) for x in v])
    members = exact_members([_number(x) for x in v], t)
    if not members:
        return _never(c)
    return c.is_in([int(m) if t == "integer" else float(m) for m in members])  # the column's type


def _pl_day(c: pl.Expr, field_type: str) -> pl.Expr:
    return c if field_type == "date" else c.dt.date()


def _pl_on_day(compare: Callable[[Any, Any], Any]) -> Builder:
    return lambda c, v, t, a: compare(_pl_day(c, t), _date(v))


def _pl_between(c: pl.Expr, v: Any, t: str, a: datetime) -> pl.Expr:
    if t in _TEMPORAL:
        return _pl_day(c, t).is_between(_date(v[0]), _date(v[1]), closed="both")
    return _pl_number("gte")(c, v[0], t, a) & _pl_number("lte")(c, v[1], t, a)


def _pl_in_last_days(c: pl.Expr, days: int, t: str, as_of: datetime) -> pl.Expr:
    at = c if t == "timestamp" else c.cast(PL_TIMESTAMP)  # a date means its midnight UTC
    return (at >= pl.lit(window_start(as_of, days), dtype=PL_TIMESTAMP)) & (at <= pl.lit(as_of, dtype=PL_TIMESTAMP))


def _pl_has(combine: Callable[[Sequence[pl.Expr]], pl.Expr]) -> Builder:
    def build(c: pl.Expr, v: Any, t: str, a: datetime) -> pl.Expr:
        tags = c.list.eval(fold_polars(pl.element()))
        return combine([tags.list.contains(pl.lit(fold(x), dtype=pl.String)) for x in v])

    return build


def _pl_string(method: str) -> Builder:
    """A `str` namespace test of the folded value, e.g. `starts_with`."""
    return lambda c, v, t, a: getattr(fold_polars(c).str, method)(_pl_folded(v))


# --------------------------------------------------------------------------- the operators
# In the order each type lists its operators (messages, docs).

register(Operator("is", ("string", *_NUMERIC, "boolean"), value_rules.one, _sql_is, _pl_is))
register(negation("is_not", of="is"))
register(Operator("in", ("string", *_NUMERIC), value_rules.one_of, _sql_in, _pl_in))
register(negation("not_in", of="in"))
register(Operator(
    "contains", ("string",), value_rules.text,
    lambda c, v, t, a: exp.GT(this=exp.StrPosition(this=fold_sql(c), substr=folded_literal(v)),
                              expression=exp.Literal.number(0)),
    lambda c, v, t, a: fold_polars(c).str.contains(_pl_folded(v), literal=True),
))
register(negation("not_contains", of="contains"))
register(Operator("starts_with", ("string",), value_rules.text,
                  lambda c, v, t, a: exp.StartsWith(this=fold_sql(c), expression=folded_literal(v)),
                  _pl_string("starts_with")))
register(Operator("ends_with", ("string",), value_rules.text,
                  lambda c, v, t, a: exp.EndsWith(this=fold_sql(c), expression=folded_literal(v)),
                  _pl_string("ends_with")))
for _name in ("gt", "gte", "lt", "lte"):
    register(Operator(_name, _NUMERIC, value_rules.number, _sql_number(_name), _pl_number(_name)))
register(Operator("before", _TEMPORAL, value_rules.day, _sql_on_day(exp.LT), _pl_on_day(operator.lt)))
register(Operator("after", _TEMPORAL, value_rules.day, _sql_on_day(exp.GT), _pl_on_day(operator.gt)))
register(Operator("on", _TEMPORAL, value_rules.day, _sql_on_day(exp.EQ), _pl_on_day(operator.eq)))
register(Operator("between", (*_NUMERIC, *_TEMPORAL), value_rules.bounds, _sql_between, _pl_between,
                  text="{field} between {values[0]} and {values[1]}"))
register(Operator("in_last_days", _TEMPORAL, value_rules.days, _sql_in_last_days, _pl_in_last_days,
                  crossing=_crossed_last_days))
register(negation("not_in_last_days", of="in_last_days"))
register(Operator("has_any", ("list",), value_rules.tags, _sql_has(exp.ArrayOverlaps),
                  _pl_has(pl.any_horizontal), tags="any"))
register(Operator("has_all", ("list",), value_rules.tags, _sql_has(exp.ArrayContainsAll),
                  _pl_has(pl.all_horizontal), tags="all"))
register(negation("has_none", of="has_any"))
# `IS NOT NULL` is never NULL; a list's `size > 0` is NULL for a missing list.
# Both cost nothing in the engine: not worth a pass per distinct value.
register(Operator("is_set", (*_SCALAR, "list"), None, _sql_is_set, _pl_is_set, text="{field} {op}",
                  null_safe=_SCALAR, per_value=False))
register(negation("is_not_set", of="is_set"))
