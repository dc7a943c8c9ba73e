"""The field operators and the properties the rest of the code reads from them.

One row per operator (segment-language.md, "Field filters"). Code that needs
to know something about an operator asks here instead of keeping its own list
of names, so adding an operator means filling in one row:

- `types`: the field types it applies to (fields.OPERATORS_BY_TYPE derives from it);
- `negation_of`: for a negative operator, its positive partner; it is evaluated
  as the exact complement of the partner (spec rule 3);
- `null_safe`: field types on which the positive builder never yields NULL for
  a missing value (the SQL compiler skips the COALESCE there);
- `time_relative`: the result depends on the run's `as_of`, so it can change
  with the clock alone (an incremental run must look at such values again,
  engine/incremental.py);
- `per_value`: worth evaluating once per distinct value and broadcasting
  (engine/encoded.py); `is_set`/`is_not_set` cost nothing in the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

_SCALAR = ("string", "integer", "number", "boolean", "date", "timestamp")
_NUMERIC = ("integer", "number")
_TEMPORAL = ("date", "timestamp")


@dataclass(frozen=True)
class Operator:
    name: str
    types: tuple[str, ...]
    negation_of: str | None = None
    null_safe: tuple[str, ...] = ()
    time_relative: bool = False
    per_value: bool = True


# The order is the order each type lists its operators in (messages, docs).
_ALL = (
    Operator("is", ("string", *_NUMERIC, "boolean")),
    Operator("is_not", ("string", *_NUMERIC, "boolean"), negation_of="is"),
    Operator("in", ("string", *_NUMERIC)),
    Operator("not_in", ("string", *_NUMERIC), negation_of="in"),
    Operator("contains", ("string",)),
    Operator("not_contains", ("string",), negation_of="contains"),
    Operator("starts_with", ("string",)),
    Operator("ends_with", ("string",)),
    Operator("gt", _NUMERIC),
    Operator("gte", _NUMERIC),
    Operator("lt", _NUMERIC),
    Operator("lte", _NUMERIC),
    Operator("before", _TEMPORAL),
    Operator("after", _TEMPORAL),
    Operator("on", _TEMPORAL),
    Operator("between", (*_NUMERIC, *_TEMPORAL)),
    Operator("in_last_days", _TEMPORAL, time_relative=True),
    Operator("not_in_last_days", _TEMPORAL, negation_of="in_last_days", time_relative=True),
    Operator("has_any", ("list",)),
    Operator("has_all", ("list",)),
    Operator("has_none", ("list",), negation_of="has_any"),
    # `IS NOT NULL` is never NULL; a list's `size > 0` is NULL for a missing list.
    Operator("is_set", (*_SCALAR, "list"), null_safe=_SCALAR, per_value=False),
    Operator("is_not_set", (*_SCALAR, "list"), negation_of="is_set", null_safe=_SCALAR, per_value=False),
)

OPERATORS: dict[str, Operator] = {op.name: op for op in _ALL}


def positive(name: str) -> str:
    """The operator a negative one complements (itself for a positive one)."""
    return OPERATORS[name].negation_of or name


def operators_of_type(field_type: str) -> tuple[str, ...]:
    return tuple(op.name for op in _ALL if field_type in op.types)


__all__ = ["OPERATORS", "Operator", "operators_of_type", "positive"]
