"""Text -> typed Arrow arrays, vectorized: the CSV rules of data-contract.md on whole columns.

Integers are plain decimal digits (`42.0` and `1e3` are not); numbers are finite;
timestamps are ISO 8601 with `T` or a space, an optional zone (none means UTC),
and a date alone is midnight UTC. Every parser returns the typed values plus a
mask of the inputs given but not parsed, so callers quarantine exactly those rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..segments.fields import arrow_type


class Parsed(NamedTuple):
    values: pa.Array
    bad: np.ndarray  # bool per row: a value was given but is not valid for the type


_STRING_TYPES = (pa.string(), pa.large_string())
_INTEGER = r"^[+-]?[0-9]+$"
_NUMBER = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
# A zone may only follow a time; a date alone means midnight UTC.
_TIMESTAMP = (
    r"^(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})"
    r"(?:[T ](?P<hh>[0-9]{2}):(?P<mm>[0-9]{2})(?::(?P<ss>[0-9]{2})(?:[.,](?P<frac>[0-9]{1,9}))?)?"
    r"(?P<tz>Z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?$"
)
_LONG_FRACTION = r"([.,][0-9]{6})[0-9]+"
_OFFSET = r"^(?P<sign>[+-])(?P<hh>[0-9]{2}):?(?P<mm>[0-9]{2})?$"


def as_string_array(arr: pa.Array) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.type != pa.string():
        arr = arr.cast(pa.string())
    return arr


def clean_text(arr: pa.Array) -> pa.Array:
    """Trim surrounding whitespace; an empty string becomes missing (NULL)."""
    trimmed = pc.utf8_trim_whitespace(as_string_array(arr))
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)


def _bad(text: pa.Array, values: pa.Array) -> np.ndarray:
    """Given (not NULL) but parsed to NULL."""
    return pc.and_(text.is_valid(), values.is_null()).to_numpy(zero_copy_only=False)


def _only_matching(text: pa.Array, pattern: str) -> pa.Array:
    ok = pc.fill_null(pc.match_substring_regex(text, pattern), False)
    return pc.if_else(ok, text, pa.scalar(None, pa.string()))


def parse_string(text: pa.Array) -> Parsed:
    return Parsed(text, np.zeros(len(text), dtype=bool))


def parse_integer(text: pa.Array) -> Parsed:
    candidate = _only_matching(text, _INTEGER)
    try:
        values = pc.cast(candidate, pa.int64())
    except pa.ArrowInvalid:
        # Only digits reach the cast: some value is out of range, so check them one by one.
        values = pa.array([_int64_or_none(s) for s in candidate.to_pylist()], pa.int64())
    return Parsed(values, _bad(text, values))


def _int64_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


def parse_number(text: pa.Array) -> Parsed:
    values = pc.cast(_only_matching(text, _NUMBER), pa.float64())
    finite = pc.fill_null(pc.is_finite(values), False)
    values = pc.if_else(finite, values, pa.scalar(None, pa.float64()))
    return Parsed(values, _bad(text, values))


def parse_boolean(text: pa.Array) -> Parsed:
    lower = pc.utf8_lower(text)
    known = pc.is_in(lower, pa.array(["true", "false"]))
    values = pc.if_else(known, pc.equal(lower, "true"), pa.scalar(None, pa.bool_()))
    return Parsed(values, _bad(text, values))


def _strict_strptime(text: pa.Array, fmt: str) -> pa.Array:
    """strptime that refuses a day past the end of its month (Arrow would roll 02-30 over to 03-01);
    `text` must start with YYYY-MM-DD."""
    parsed = pc.strptime(text, format=fmt, unit="us", error_is_null=True)
    day = pc.cast(pc.utf8_slice_codeunits(text, 8, 10), pa.int64())
    same_day = pc.fill_null(pc.equal(pc.day(parsed), day), False)
    return pc.if_else(same_day, parsed, pa.scalar(None, pa.timestamp("us")))


# Python's datetime (and so every consumer of `to_pylist`) covers years 1..9999.
_MIN_US = -62_135_596_800_000_000  # 0001-01-01T00:00:00
_MAX_US = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999


def _in_python_range(values: pa.Array) -> pa.Array:
    micros = pc.cast(pc.cast(values, pa.timestamp("us")), pa.int64())
    inside = pc.fill_null(pc.and_(pc.greater_equal(micros, _MIN_US), pc.less_equal(micros, _MAX_US)), False)
    return pc.if_else(inside, values, pa.scalar(None, values.type))


def parse_date(text: pa.Array) -> Parsed:
    candidate = _only_matching(text, _DATE)
    try:
        values = pc.cast(candidate, pa.date32())  # fast, and refuses 02-30 itself
    except pa.ArrowInvalid:  # some value of the batch is out of range: check them all strictly
        values = pc.cast(_strict_strptime(candidate, "%Y-%m-%d"), pa.date32())
    values = _in_python_range(values)
    return Parsed(values, _bad(text, values))


def parse_timestamp(text: pa.Array) -> Parsed:
    """ISO 8601 text -> naive UTC microseconds. After one regular expression checks the shape,
    Arrow's cast converts (fast) or, when a value defeats it, the exact component-wise path
    does the whole batch; both accept exactly the same values (tests compare them)."""
    candidate = _only_matching(text, _TIMESTAMP)
    try:
        values = _timestamp_by_cast(candidate)
    except pa.ArrowInvalid:
        values = _timestamp_by_parts(candidate)
    values = _in_python_range(values)
    return Parsed(values, _bad(text, values))


def _timestamp_by_cast(candidate: pa.Array) -> pa.Array:
    text = pc.replace_substring(candidate, ",", ".")
    if pc.any(pc.greater(pc.utf8_length(text), 26)).as_py():  # maybe more than 6 fraction digits
        text = pc.replace_substring_regex(text, _LONG_FRACTION, r"\1")
    after_date = pc.utf8_slice_codeunits(text, 10)
    zoned = pc.fill_null(pc.or_(pc.ends_with(after_date, "Z"), pc.match_substring_regex(after_date, "[+-]")), False)
    no_value = pa.scalar(None, pa.string())
    naive = pc.cast(pc.if_else(zoned, no_value, text), pa.timestamp("us"))
    utc = pc.cast(pc.if_else(zoned, text, no_value), pa.timestamp("us", tz="UTC"))
    # Arrow keeps instants in UTC: dropping the zone keeps the UTC value.
    utc_naive = pc.cast(utc.view(pa.int64()), pa.timestamp("us"))
    return pc.coalesce(naive, utc_naive)


def _timestamp_by_parts(candidate: pa.Array) -> pa.Array:
    parts = pc.extract_regex(candidate, _TIMESTAMP)  # NULL where the shape is wrong
    offset = pc.extract_regex(pc.struct_field(parts, "tz"), _OFFSET)  # NULL for "" and "Z"

    def part(struct: pa.Array, name: str, default: str = "00") -> pa.Array:
        value = pc.struct_field(struct, name)
        return pc.if_else(pc.equal(value, ""), default, value)

    def number(struct: pa.Array, name: str) -> pa.Array:
        return pc.cast(part(struct, name), pa.int64())

    wall = pc.binary_join_element_wise(
        pc.struct_field(parts, "date"), " ", part(parts, "hh"), ":", part(parts, "mm"), ":", part(parts, "ss"), ""
    )
    wall_us = pc.cast(_strict_strptime(wall, "%Y-%m-%d %H:%M:%S"), pa.int64())
    # strptime takes a leap second (:60) and rolls it into the next minute; ISO 8601 parsers here refuse it.
    clock_ok = pc.and_(pc.less_equal(number(parts, "ss"), 59),
                       pc.and_(pc.less_equal(number(parts, "mm"), 59), pc.less_equal(number(parts, "hh"), 23)))
    wall_us = pc.if_else(pc.fill_null(clock_ok, False), wall_us, pa.scalar(None, pa.int64()))
    frac = pc.utf8_slice_codeunits(pc.utf8_rpad(pc.struct_field(parts, "frac"), 6, "0"), 0, 6)
    hours, minutes = number(offset, "hh"), number(offset, "mm")
    offset_ok = pc.fill_null(pc.and_(pc.less_equal(hours, 23), pc.less_equal(minutes, 59)), True)
    sign = pc.if_else(pc.equal(pc.struct_field(offset, "sign"), "-"), -1, 1)
    offset_us = pc.fill_null(pc.multiply(sign, pc.multiply(pc.add(pc.multiply(hours, 3600), pc.multiply(minutes, 60)),
                                                           1_000_000)), 0)
    utc_us = pc.subtract(pc.add(wall_us, pc.cast(frac, pa.int64())), offset_us)
    utc_us = pc.if_else(offset_ok, utc_us, pa.scalar(None, pa.int64()))
    return pc.cast(utc_us, pa.timestamp("us"))


def parse_list(text: pa.Array) -> Parsed:
    """`a| b ||c` -> ["a", "b", "c"]; a cell with no items is missing."""
    return Parsed(clean_list(pc.split_pattern(text, "|")), np.zeros(len(text), dtype=bool))


def clean_list(lists: pa.Array) -> pa.Array:
    """Trim every item, drop empty items; an empty list becomes missing (NULL)."""
    n = len(lists)
    items = pc.utf8_trim_whitespace(as_string_array(pc.list_flatten(lists)))
    parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    keep = pc.fill_null(pc.not_equal(items, ""), False).to_numpy(zero_copy_only=False)
    counts = np.bincount(parents[keep], minlength=n) if n else np.zeros(0, dtype=np.int64)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    kept = pc.filter(items, pa.array(keep, pa.bool_()))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), kept, type=pa.list_(pa.string()),
                                    mask=pa.array(counts == 0, pa.bool_()))


TEXT_PARSERS: dict[str, Callable[[pa.Array], Parsed]] = {
    "string": parse_string, "integer": parse_integer, "number": parse_number, "boolean": parse_boolean,
    "date": parse_date, "timestamp": parse_timestamp, "list": parse_list,
}

TYPE_WORDS = {
    "integer": "an integer", "number": "a number", "boolean": "a boolean (true/false)",
    "date": "a date (YYYY-MM-DD)", "timestamp": "an ISO 8601 timestamp",
}


def parse_text(arr: pa.Array, field_type: str) -> Parsed:
    """Clean then parse a text column as `field_type`."""
    return TEXT_PARSERS[field_type](clean_text(arr))


def coerce_leniently(arr: pa.Array, field_type: str) -> pa.Array:
    """Best-effort conversion (values that do not fit become NULL) of a lake column whose
    declared type changed after it was ingested (say, an undeclared text column declared later)."""
    if arr.type not in _STRING_TYPES:
        try:
            return pc.cast(arr, arrow_type(field_type), safe=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            arr = pc.cast(arr, pa.string())
    return parse_text(arr, field_type).values
