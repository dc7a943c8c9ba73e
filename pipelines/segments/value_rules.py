"""The `value` of a field filter (segment-language.md, "Values").

Each rule (the `value` of an operator in operators.py) checks the shape of the
YAML node and returns the normalized value the model stores: strings,
int/float, `datetime.date`, tuples for lists and a 2-tuple for `between`. On a
bad value `read_field_value` reports one problem at the offending node and
returns `BAD`.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from ruamel.yaml.nodes import Node, ScalarNode

from .problems import ProblemLog
from .yaml_tree import BOOL, FLOAT, INT, TIMESTAMP, Unreadable, describe, is_seq, scalar_value, text_of

if TYPE_CHECKING:
    from .operators import Operator

BAD: Any = object()  # sentinel: the value was reported as wrong

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}\Z")


class _Wrong(Exception):
    """A value rule failed; the message says what was expected and at which node."""

    def __init__(self, node: object, expected: str, detail: str | None = None) -> None:
        super().__init__(expected)
        self.node, self.expected, self.detail = node, expected, detail


def read_field_value(op: Operator, field: str, field_type: str, node: Node, log: ProblemLog) -> Any:
    """The normalized value of `{field, op, value}`; `op` already fits `field_type` and takes a value."""
    assert op.value is not None
    try:
        return op.value(field_type, node)
    except _Wrong as wrong:
        got = wrong.detail or f"got {describe(wrong.node)}"
        log.node(wrong.node, f"operator '{op.name}' on field '{field}' needs {wrong.expected}; {got}")
        return BAD


# -- scalars ------------------------------------------------------------------------


def _non_empty_text(node: object, what: str = "a non-empty string") -> str:
    text = text_of(node)
    if not text:  # " " is a string of one character: `contains: " "` finds a space
        raise _Wrong(node, what)
    return text


def _number(node: object) -> int | float:
    if isinstance(node, ScalarNode) and node.tag in (INT, FLOAT):
        try:
            value = scalar_value(node)
        except Unreadable as exc:
            raise _Wrong(node, "a number", str(exc)) from None
        assert isinstance(value, int | float)
        if isinstance(value, float) and not math.isfinite(value):
            raise _Wrong(node, "a finite number")
        return value
    raise _Wrong(node, "a number")  # booleans are not numbers, "5" is text


def _positive_int(node: object) -> int:
    what = "a positive whole number of days"
    if isinstance(node, ScalarNode) and node.tag == INT:
        try:
            value = scalar_value(node)
        except Unreadable as exc:
            raise _Wrong(node, what, str(exc)) from None
        assert isinstance(value, int)
        if value >= 1:
            return value
    raise _Wrong(node, what)


def _date(node: object) -> date:
    """A calendar date: a YAML date or the text YYYY-MM-DD; impossible dates are refused."""
    what = "a date YYYY-MM-DD"
    text = text_of(node)
    if text is None or not _ISO_DATE.match(text.strip()):
        raise _Wrong(node, what)
    if isinstance(node, ScalarNode) and node.tag == TIMESTAMP:
        try:
            value = scalar_value(node)
        except Unreadable as exc:
            raise _Wrong(node, what, str(exc)) from None
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        raise _Wrong(node, what)
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise _Wrong(node, what, f"'{text.strip()}' is not a real date") from None


def _boolean(node: object) -> bool:
    if isinstance(node, ScalarNode) and node.tag == BOOL:
        return bool(scalar_value(node))
    raise _Wrong(node, "true or false")


def one(field_type: str, node: object) -> Any:
    """One value of the field's type (`is`, items of `in`)."""
    if field_type == "string":
        # An empty string is stored as missing, so `is ""` could never hold.
        return _non_empty_text(node, "a non-empty string (test a missing value with is_not_set)")
    if field_type in ("integer", "number"):
        return _number(node)
    if field_type == "boolean":
        return _boolean(node)
    if field_type in ("date", "timestamp"):
        return _date(node)
    raise _Wrong(node, "a single value")  # list fields have no `is`; kept total for safety


def _list_items(node: object, what: str) -> list[Node]:
    if not is_seq(node) or not node.value:  # type: ignore[attr-defined]
        raise _Wrong(node, what)
    return list(node.value)  # type: ignore[attr-defined]


# -- rules (operators.py names each operator's) --------------------------------------


def one_of(field_type: str, node: Node) -> tuple:
    items = _list_items(node, "a non-empty list of values")
    return tuple(one(field_type, item) for item in items)


def text(field_type: str, node: Node) -> str:
    return _non_empty_text(node)


def number(field_type: str, node: Node) -> int | float:
    return _number(node)


def bounds(field_type: str, node: Node) -> tuple:
    bound = _date if field_type in ("date", "timestamp") else _number
    shape = "[low, high] dates YYYY-MM-DD" if bound is _date else "[low, high] numbers"
    items = _list_items(node, shape)
    if len(items) != 2:
        raise _Wrong(node, shape, f"got a list of {len(items)}")
    low, high = bound(items[0]), bound(items[1])
    if low > high:  # type: ignore[operator]
        raise _Wrong(node, f"{shape} with low <= high", f"got {low} > {high}")
    return (low, high)


def day(field_type: str, node: Node) -> date:
    return _date(node)


def days(field_type: str, node: Node) -> int:
    return _positive_int(node)


def tags(field_type: str, node: Node) -> tuple[str, ...]:
    items = _list_items(node, "a non-empty list of strings")
    return tuple(_non_empty_text(item, "non-empty strings in its list") for item in items)


def read_positive_days(node: Node, key: str, log: ProblemLog) -> int | None:
    """`in_last_days` of an event filter."""
    try:
        return _positive_int(node)
    except _Wrong as wrong:
        log.node(wrong.node, f"'{key}' needs {wrong.expected}; {wrong.detail or 'got ' + describe(wrong.node)}")
        return None


def read_count_value(node: Node, log: ProblemLog) -> int | None:
    """`count: {value: N}`: a whole number >= 0."""
    if isinstance(node, ScalarNode) and node.tag == INT:
        try:
            value = scalar_value(node)
        except Unreadable:
            value = -1
        if isinstance(value, int) and value >= 0:
            return value
    log.node(node, f"count 'value' needs a whole number >= 0; got {describe(node)}")
    return None
