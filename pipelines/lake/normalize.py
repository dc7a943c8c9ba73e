"""Type a batch by the catalog and apply the row rules; bad rows go to quarantine.

A quarantined row's reason lists every problem of the row, one clause per column,
joined by "; ". A cell over MAX_CELL_CHARS is a problem too (it protects the
warehouse and the email tools downstream).

Decisions where the contract is silent:
- `status` is stored lower-cased; `email` is stored as given (trimmed), not
  lower-cased, since the local part of an address may be case-sensitive.
- An email is valid when it has one `@`, no spaces, a dot in the domain and
  at most 254 characters (a deliberately loose check: it catches garbage, not
  deliverability).
- A list with no items is stored as missing (NULL), like an empty cell.
- Event names are trimmed but keep their case (they match exactly).
- NaN and infinity are not numbers, whatever the file format.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..segments.fields import STATUSES, arrow_type
from .columns import ROW_COLUMN, TableSpec
from .readers import SourceBatch
from .textparse import TEXT_PARSERS, TYPE_WORDS, as_string_array, clean_list, clean_text

MAX_CELL_CHARS = 65_536
# quarantine.raw keeps at most this much of a row (a 100 MB cell must not be copied whole)
MAX_RAW_CHARS = 65_536
MAX_EMAIL_CHARS = 254
_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

# held_*: what a quarantined row still suppresses ("an unsubscribe is never lost",
# data-contract.md); _still_suppresses decides which rows do.
QUARANTINE_SCHEMA = pa.schema([("row_number", pa.int64()), ("reason", pa.string()), ("raw", pa.string()),
                               ("held_subscriber_id", pa.string()), ("held_email", pa.string()),
                               ("held_status", pa.string())])


@dataclass
class Normalized:
    good: pa.Table  # catalog columns typed, then extra columns as text, then ROW_COLUMN
    quarantine: pa.Table  # QUARANTINE_SCHEMA
    extras: list[str]


# (column, mask of rows with the problem, message for a row position)
Check = tuple[str, np.ndarray, Callable[[int], str]]


def shown(value: object, limit: int = 60) -> str:
    text = str(value)
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _invalid(checks: list[Check], name: str, mask: np.ndarray, values: pa.Array, what: str) -> None:
    """Rows in `mask` have a value of column `name` that is not `what`."""
    if mask.any():
        checks.append((name, mask, lambda i: f"column '{name}': {shown(values[i].as_py())} is not {what}"))


def _mask(arr: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def _size_check(name: str, source: pa.Array, checks: list[Check]) -> None:
    if not (pa.types.is_string(source.type) or pa.types.is_large_string(source.type)):
        return
    lengths = pc.utf8_length(source)
    too_long = _mask(pc.greater(lengths, MAX_CELL_CHARS))
    if too_long.any():
        checks.append((name, too_long, lambda i: f"column '{name}' holds {lengths[i].as_py():,} characters "
                                                 f"(more than the {MAX_CELL_CHARS:,} allowed)"))


def _typed(name: str, field_type: str, source: pa.Array, checks: list[Check]) -> pa.Array:
    target = arrow_type(field_type)
    if pa.types.is_null(source.type):
        return pa.nulls(len(source), target)
    if pa.types.is_string(source.type) or pa.types.is_large_string(source.type):
        text = clean_text(source)
        parsed = TEXT_PARSERS[field_type](text)
        _invalid(checks, name, parsed.bad, text, TYPE_WORDS.get(field_type, ""))
        return parsed.values
    if field_type == "list":
        return clean_list(source)
    typed = source.cast(target)  # Parquet, JSON: the reader already checked that the type fits
    if field_type == "number":  # NaN and infinity are not numbers a filter can compare (as in CSV)
        _invalid(checks, name, _mask(pc.invert(pc.is_finite(typed))), typed, TYPE_WORDS[field_type])
    return typed


def normalize_batch(batch: SourceBatch, spec: TableSpec) -> Normalized:
    n = len(batch.row_numbers)
    checks: list[Check] = []
    out: dict[str, pa.Array] = {}
    for name, field_type in spec.fields.items():
        source = batch.columns.get(name)
        if source is None:
            out[name] = pa.nulls(n, arrow_type(field_type))
            continue
        _size_check(name, source, checks)
        out[name] = _typed(name, field_type, source, checks)
    extras = [name for name in batch.columns if name not in spec.fields]
    for name in extras:
        _size_check(name, batch.columns[name], checks)
        out[name] = clean_text(batch.columns[name])

    for name in spec.required:
        missing = out[name].is_null().to_numpy(zero_copy_only=False)
        if missing.any():
            checks.append((name, missing, partial(_required_missing, name)))
    if spec.kind == "subscribers":
        _subscriber_rules(out, checks)

    bad = np.zeros(n, dtype=bool)
    for _, mask, _ in checks:
        bad |= mask
    if batch.problems:
        bad[list(batch.problems)] = True
    positions = np.flatnonzero(bad)
    order = {name: i for i, name in enumerate([*spec.fields, *extras])}
    take = pa.array(positions, pa.int64())

    def text(name: str) -> list:
        return out[name].take(take).cast(pa.string()).to_pylist() if name in out else [None] * len(positions)

    reasons = [_reason(int(i), batch.problems.get(int(i), {}), checks, order) for i in positions]
    raws = batch.raw(positions) if positions.size else []
    unread = [None] * len(batch.broken)  # a broken record has no values
    quarantine = quarantine_rows(
        spec.kind,
        [*batch.row_numbers[positions].tolist(), *(b.row_number for b in batch.broken)],
        [*reasons, *(b.reason for b in batch.broken)],
        [*raws, *(b.raw for b in batch.broken)],
        [*text("subscriber_id"), *unread], [*text("email"), *unread], [*text("status"), *unread])
    good = pa.table({**out, ROW_COLUMN: pa.array(batch.row_numbers, pa.int64())})
    if positions.size:
        good = good.filter(pa.array(~bad))
    return Normalized(good=good, quarantine=quarantine, extras=extras)


def _required_missing(name: str, i: int) -> str:
    return f"column '{name}' is required but missing"


def _still_suppresses(kind: str, subscriber_id: str | None, email: str | None, status: str | None) -> str:
    """The clause a quarantined row's reason gets when the row still suppresses, else ""."""
    if kind == "subscribers":
        status = (status or "").strip().lower()
        if status and status != "active" and (subscriber_id is not None or email is not None):
            who = " and ".join(x for x in (f"subscriber {shown(subscriber_id)}" if subscriber_id is not None else "",
                                           f"address {shown(email)}" if email is not None else "") if x)
            return f"; status {shown(status)} still suppresses {who}"
    elif kind == "suppressions" and email is not None:
        return f"; still suppresses address {shown(email)}"
    return ""


def quarantine_rows(kind: str, row_numbers: Sequence[int], reasons: Sequence[str], raws: Sequence[str | None],
                    ids: list, emails: list, statuses: list) -> pa.Table:
    """Quarantine rows of a `kind` file, held_* set on those that still suppress;
    a raw row is cut to MAX_RAW_CHARS and its reason then says so."""
    columns: dict[str, list] = {name: [] for name in QUARANTINE_SCHEMA.names}
    for row in zip(row_numbers, reasons, raws, ids, emails, statuses, strict=True):
        number, reason, raw, subscriber_id, email, status = row
        clause = _still_suppresses(kind, subscriber_id, email, status)
        reason += clause
        if raw is not None and len(raw) > MAX_RAW_CHARS:
            reason = f"{reason} (raw row cut to its first {MAX_RAW_CHARS:,} of {len(raw):,} characters)"
            raw = raw[:MAX_RAW_CHARS]
        held = (subscriber_id, email, status or "suppressed") if clause else (None, None, None)
        for name, value in zip(QUARANTINE_SCHEMA.names, (number, reason, raw, *held), strict=True):
            columns[name].append(value)
    return pa.table(columns, schema=QUARANTINE_SCHEMA)


def _reason(position: int, given: dict[str, str], checks: list[Check], order: dict[str, int]) -> str:
    """One clause per column (its first problem), columns in table order."""
    by_column = dict(given)
    for name, mask, message in checks:
        if mask[position] and name not in by_column:
            by_column[name] = message(position)
    ranked = sorted(by_column.items(), key=lambda item: order.get(item[0], -1))
    return "; ".join(message for _, message in ranked)


def _subscriber_rules(out: dict[str, pa.Array], checks: list[Check]) -> None:
    given = out["status"]
    status = out["status"] = pc.utf8_lower(as_string_array(given))
    unknown = pc.and_(pc.is_valid(status), pc.invert(pc.is_in(status, pa.array(STATUSES))))
    _invalid(checks, "status", _mask(unknown), given, f"one of {', '.join(STATUSES)}")
    email = out["email"]
    valid = pc.and_(pc.match_substring_regex(email, _EMAIL), pc.less_equal(pc.utf8_length(email), MAX_EMAIL_CHARS))
    _invalid(checks, "email", _mask(pc.and_(pc.is_valid(email), pc.invert(valid))), email, "a valid email address")
