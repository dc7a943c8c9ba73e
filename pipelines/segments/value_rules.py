"""The `value` of a field filter (segment-language.md, "Values"), and the other numbers of a definition.
Each rule takes the field type and YAML node and returns the normalized value the model stores
(int/float, `datetime.date`, tuples, `between` as a 2-tuple), or raises `Wrong`, which model.py
words and places at the node."""

from __future__ import annotations

import math
import re
from contextlib import suppress
from datetime import date
from typing import Any

from ruamel.yaml.nodes import Node, ScalarNode, SequenceNode

from .yaml_tree import BOOL, FLOAT, INT, text_of

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}\Z")


class Wrong(Exception):
    """A value rule failed: what was `expected` at `node` (and what was got instead, if not just the node)."""

    def __init__(self, node: object, expected: str, detail: str | None = None) -> None:
        super().__init__(expected)
        self.node, self.expected, self.detail = node, expected, detail


def text(field_type: str, node: Node, what: str = "a non-empty string") -> str:
    value = text_of(node)
    if not value:  # " " is a string of one character: `contains: " "` finds a space
        raise Wrong(node, what)
    return value


def _int(text: str) -> int:
    with suppress(ValueError):
        return int(text, 0)
    try:
        return int(text.replace("_", ""), 10)  # 02134: decimal, as YAML 1.2 reads it
    except ValueError:
        raise ValueError(f"cannot read '{text}' as a number") from None


def _float(text: str) -> float:
    lowered = text.lower().replace("_", "")
    specials = {".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}
    if lowered in specials:
        return specials[lowered]
    try:
        return float(lowered)
    except ValueError:
        raise ValueError(f"cannot read '{text}' as a number") from None


def number(field_type: str, node: Node) -> int | float:
    if isinstance(node, ScalarNode) and node.tag in (INT, FLOAT):
        try:
            value = _int(node.value) if node.tag == INT else _float(node.value)
        except ValueError as exc:
            raise Wrong(node, "a number", str(exc)) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise Wrong(node, "a finite number")
        return value
    raise Wrong(node, "a number")  # booleans are not numbers, "5" is text


def _whole(node: Node, what: str, low: int, detail: bool) -> int:
    """A YAML integer >= low; `detail`: say why an unreadable one is wrong."""
    if isinstance(node, ScalarNode) and node.tag == INT:
        try:
            value = _int(node.value)
        except ValueError as exc:
            raise Wrong(node, what, str(exc) if detail else None) from None
        if value >= low:
            return value
    raise Wrong(node, what)


def days(field_type: str, node: Node) -> int:
    return _whole(node, "a positive whole number of days", 1, detail=True)


def count(field_type: str, node: Node) -> int:
    """`count: {value: N}` of an event filter."""
    return _whole(node, "a whole number >= 0", 0, detail=False)


def day(field_type: str, node: Node) -> date:
    """A calendar date: a YAML date or the text YYYY-MM-DD; impossible dates are refused."""
    what = "a date YYYY-MM-DD"
    value = text_of(node)
    if value is None or not _ISO_DATE.match(value.strip()):
        raise Wrong(node, what)
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise Wrong(node, what, f"'{value.strip()}' is not a real date") from None


def one(field_type: str, node: Node) -> Any:
    """One value of the field's type (`is`, items of `in`)."""
    if field_type == "string":
        # An empty string is stored as missing, so `is ""` could never hold.
        return text(field_type, node, "a non-empty string (test a missing value with is_not_set)")
    if field_type in ("integer", "number"):
        return number(field_type, node)
    if field_type in ("date", "timestamp"):
        return day(field_type, node)
    if isinstance(node, ScalarNode) and node.tag == BOOL:  # `is` applies to no other type
        return node.value.lower() in ("true", "yes", "on", "y")  # YAML 1.1 spellings only under %YAML 1.1
    raise Wrong(node, "true or false")


def _list_items(node: Node, what: str) -> list[Node]:
    if not isinstance(node, SequenceNode) or not node.value:
        raise Wrong(node, what)
    return list(node.value)


def one_of(field_type: str, node: Node) -> tuple:
    return tuple(one(field_type, item) for item in _list_items(node, "a non-empty list of values"))


def bounds(field_type: str, node: Node) -> tuple:
    bound = day if field_type in ("date", "timestamp") else number
    shape = "[low, high] dates YYYY-MM-DD" if bound is day else "[low, high] numbers"
    items = _list_items(node, shape)
    if len(items) != 2:
        raise Wrong(node, shape, f"got a list of {len(items)}")
    low, high = bound(field_type, items[0]), bound(field_type, items[1])
    if low > high:  # type: ignore[operator]
        raise Wrong(node, f"{shape} with low <= high", f"got {low} > {high}")
    return (low, high)


def tags(field_type: str, node: Node) -> tuple[str, ...]:
    items = _list_items(node, "a non-empty list of strings")
    return tuple(text(field_type, item, "non-empty strings in its list") for item in items)
