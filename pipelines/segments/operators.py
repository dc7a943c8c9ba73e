"""The field operators (segment-language.md, "Field filters"): all the code knows about one
is its registered `Operator` row. A negative operator (`negation`) is the exact complement of
its positive partner (spec rule 3): it shares its row and is NOT of the two-valued result."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from ..errors import UserError
from . import value_rules
from .case import fold
from .dialects import timestamp_literal
from .numeric import Bound, exact_bound, exact_members

if TYPE_CHECKING:  # the models are generated from this registry
    from .model import FieldFilter
    from .tree import Language

# (language, column, value, field type, as_of) -> expression: one builder serves SQL and Polars
Builder = Callable[["Language", Any, Any, str, datetime], Any]
# (timestamp column, value, base as_of, as_of) -> condition
Crossing = Callable[[exp.Expr, Any, datetime, datetime], exp.Expr]

_SCALAR = ("string", "integer", "number", "boolean", "date", "timestamp")
_NUMERIC = ("integer", "number")
_TEMPORAL = ("date", "timestamp")

# `n op value` for the comparison words as Python operators (Polars and numpy overload them).
COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "is": operator.eq, "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le,
}


@dataclass(frozen=True)
class Operator:
    name: str
    types: tuple[str, ...]  # the field types it applies to (in the order each type lists them)
    value: Callable[[str, Any], Any] | None  # the rule reading its YAML `value` (value_rules.py)
    build: Builder  # its POSITIVE predicate; may be NULL on a missing value (tree.py: two-valued)
    text: str = "{field} {op} {value}"  # how `segments explain` words it (commands/describe.py)
    null_safe: tuple[str, ...] = ()  # field types on which `build` is never NULL (no COALESCE)
    # Worth evaluating once per distinct value (engine/encoded.py); a list only with `tags`.
    per_value: bool = True
    tags: str | None = None  # "any" or "all"
    crossing: Crossing | None = None  # an `as_of`-dependent result: what two clocks may differ on
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
    """`as_of - days` (exact 24-hour days: UTC has no DST), the start of an `in_last_days`
    window; 0001-01-01 for one reaching before the calendar: no stored value is earlier."""
    try:
        return as_of - timedelta(days=days)
    except OverflowError:
        return datetime(1, 1, 1)


def operators_of_type(field_type: str) -> tuple[str, ...]:
    return tuple(op.name for op in OPERATORS.values() if field_type in op.types)


# --------------------------------------------------------------------------- builders


def _bounded(lang: Language, c: Any, bound: Bound, t: str) -> Any:
    if isinstance(bound, bool):
        return lang.is_set(c, t) if bound else lang.never(c)
    return lang.compare(bound[0], c, lang.value(bound[1], t))


def _number(op: str) -> Builder:
    """`c op v`, compared against a value of the column's own type (numeric.py: exact)."""
    return lambda lang, c, v, t, a: _bounded(lang, c, exact_bound(op, v, t), t)


def _is(lang: Language, c: Any, v: Any, t: str, a: datetime) -> Any:
    if t == "string":
        return lang.compare("is", lang.fold(c), lang.value(fold(v), t))
    if t == "boolean":
        return lang.compare("is", c, lang.value(v, t))
    return _number("is")(lang, c, v, t, a)


def _in(lang: Language, c: Any, v: Any, t: str, a: datetime) -> Any:
    if t == "string":
        return lang.isin(lang.fold(c), [fold(x) for x in v], t)
    members = exact_members(v, t)
    return lang.isin(c, members, t) if members else lang.never(c)


def _day(lang: Language, c: Any, t: str) -> Any:
    """The value's UTC calendar date (timestamps are naive UTC)."""
    return c if t == "date" else lang.cast(c, "date")


def _on_day(op: str) -> Builder:
    return lambda lang, c, v, t, a: lang.compare(op, _day(lang, c, t), lang.value(v, "date"))


def _between(lang: Language, c: Any, v: Any, t: str, a: datetime) -> Any:
    if t in _TEMPORAL:
        return lang.between(_day(lang, c, t), lang.value(v[0], "date"), lang.value(v[1], "date"))
    low, high = exact_bound("gte", v[0], t), exact_bound("lte", v[1], t)
    if isinstance(low, bool) or isinstance(high, bool):
        return lang.all([_bounded(lang, c, low, t), _bounded(lang, lang.copy(c), high, t)])
    return lang.between(c, lang.value(low[1], t), lang.value(high[1], t))


def _in_last_days(lang: Language, c: Any, days: int, t: str, as_of: datetime) -> Any:
    at = c if t == "timestamp" else lang.cast(c, "timestamp")  # a date means its midnight UTC
    return lang.all([lang.compare("gte", at, lang.value(window_start(as_of, days), "timestamp")),
                     lang.compare("lte", lang.copy(at), lang.value(as_of, "timestamp"))])


def _text(test: str) -> Builder:
    """`contains`, `starts_with` or `ends_with` of the folded value in the folded column."""
    return lambda lang, c, v, t, a: lang.text_test(test, lang.fold(c), lang.value(fold(v), t))


def _has(how: str) -> Builder:
    """`has_any` / `has_all` of the folded tags (a missing list is the empty list)."""
    return lambda lang, c, v, t, a: lang.has(how, c, [fold(x) for x in v])


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


# --------------------------------------------------------------------------- the operators
# In the order each type lists its operators (messages, docs).

register(Operator("is", ("string", *_NUMERIC, "boolean"), value_rules.one, _is))
register(negation("is_not", of="is"))
register(Operator("in", ("string", *_NUMERIC), value_rules.one_of, _in))
register(negation("not_in", of="in"))
register(Operator("contains", ("string",), value_rules.text, _text("contains")))
register(negation("not_contains", of="contains"))
register(Operator("starts_with", ("string",), value_rules.text, _text("starts_with")))
register(Operator("ends_with", ("string",), value_rules.text, _text("ends_with")))
for _name in ("gt", "gte", "lt", "lte"):
    register(Operator(_name, _NUMERIC, value_rules.number, _number(_name)))
register(Operator("before", _TEMPORAL, value_rules.day, _on_day("lt")))
register(Operator("after", _TEMPORAL, value_rules.day, _on_day("gt")))
register(Operator("on", _TEMPORAL, value_rules.day, _on_day("is")))
register(Operator("between", (*_NUMERIC, *_TEMPORAL), value_rules.bounds, _between,
                  text="{field} between {values[0]} and {values[1]}"))
register(Operator("in_last_days", _TEMPORAL, value_rules.days, _in_last_days, crossing=_crossed_last_days))
register(negation("not_in_last_days", of="in_last_days"))
register(Operator("has_any", ("list",), value_rules.tags, _has("any"), tags="any"))
register(Operator("has_all", ("list",), value_rules.tags, _has("all"), tags="all"))
register(negation("has_none", of="has_any"))
# `IS NOT NULL` is never NULL; a list's `size > 0` is NULL for a missing list.
# Both cost nothing in the engine: not worth a pass per distinct value.
register(Operator("is_set", (*_SCALAR, "list"), None, lambda lang, c, v, t, a: lang.is_set(c, t),
                  text="{field} {op}", null_safe=_SCALAR, per_value=False))
register(negation("is_not_set", of="is_set"))
