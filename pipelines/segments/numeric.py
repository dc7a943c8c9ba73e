"""Exact comparisons of integer and number fields with definition values (spec rule 5).

An integer above 2^53 has no exact double, and engines compare mixed types as DOUBLE,
which rounds (`9007199254740992` would match `is 9007199254740993`). So each
comparison is rewritten here into one with a value of the **column's own type**
(int64 for `integer`, double for `number`) that holds for exactly the same stored
values, which every engine compares exactly; where none exists the result is a
constant: True (holds for every present value) or False (for none).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# ("gt", 5) means `column > 5`; True / False: for every present value / for none.
Bound = tuple[str, int | float] | bool


def _int_bound(op: str, value: int | float) -> Bound:
    """`integer column op value`."""
    if isinstance(value, float):
        if op == "is" and not value.is_integer():
            return False
        # An integer is > 2.5 when > 2, >= 2.5 when >= 3, < 2.5 when < 3, <= 2.5 when <= 2.
        value = math.floor(value) if op in ("is", "gt", "lte") else math.ceil(value)
    if op == "is":
        return ("is", value) if INT64_MIN <= value <= INT64_MAX else False
    if op in ("gt", "gte"):  # the least integer that holds, against the stored range
        least = value + 1 if op == "gt" else value
        if least > INT64_MAX:
            return False
        return True if least <= INT64_MIN else (op, value)
    most = value - 1 if op == "lt" else value  # lt, lte: the greatest integer that holds
    if most < INT64_MIN:
        return False
    return True if most >= INT64_MAX else (op, value)


def _double_bound(op: str, value: int | float) -> Bound:
    """`number column op value` (stored numbers are finite doubles)."""
    if isinstance(value, float):
        return (op, value)
    try:
        nearest = float(value)
    except OverflowError:  # beyond every finite double
        return False if op == "is" else (value < 0) == (op in ("gt", "gte"))
    if nearest == value:  # exactly representable (Python compares int and float exactly): kept as written
        return (op, value)
    # Between two neighbouring doubles: no stored value equals it.
    low, high = (nearest, math.nextafter(nearest, math.inf)) if nearest < value else (
        math.nextafter(nearest, -math.inf), nearest)
    return False if op == "is" else (op, low if op in ("gt", "lte") else high)


def exact_bound(op: str, value: int | float, field_type: str) -> Bound:
    """`column op value` (op: is, gt, gte, lt, lte) for an `integer` or `number` column."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return _int_bound(op, value) if field_type == "integer" else _double_bound(op, value)


def exact_members(values: Iterable[int | float], field_type: str) -> list[int | float]:
    """The values of the column's type that `column in values` matches (in order, distinct)."""
    bounds = (exact_bound("is", v, field_type) for v in values)
    return list(dict.fromkeys(b[1] for b in bounds if isinstance(b, tuple)))  # "is" is never True
