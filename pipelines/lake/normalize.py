"""Type a batch by the catalog and apply the row rules; bad rows go to quarantine.

A row is quarantined when a required value is missing, a value does not
parse as its field's type, `status` is not one of the four statuses, `email`
is not an address, or a cell is implausibly large (over MAX_CELL_CHARS, to
protect the warehouse and the email tools downstream). Its reason lists every
problem of the row, one clause per column, joined by "; ".

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
# data-contract.md): a subscriber row with a readable subscriber_id or email and a
# status other than 'active', or a suppression-list row with a readable email.
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


def capped_raw(raws: Sequence[str | None], reasons: list[str]) -> tuple[Sequence[str | None], list[str]]:
    """Raw rows cut to MAX_RAW_CHARS; the reason of a cut row says so."""
    if all(raw is None or len(raw) <= MAX_RAW_CHARS for raw in raws):
        return raws, reasons
    out_raws: list[str | None] = []
    out_reasons: list[str] = []
    for raw, reason in zip(raws, reasons, strict=True):
        if raw is not None and len(raw) > MAX_RAW_CHARS:
            reason = f"{reason} (raw row cut to its first {MAX_RAW_CHARS:,} of {len(raw):,} characters)"
            raw = raw[:MAX_RAW_CHARS]
        out_raws.append(raw)
        out_reasons.append(reason)
    return out_raws, out_reasons


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
        if field_type == "string":
            return text
        parsed = TEXT_PARSERS[field_type](text)
        if parsed.bad.any() and field_type in TYPE_WORDS:
            checks.append((name, parsed.bad,
                           lambda i: f"column '{name}': {shown(text[i].as_py())} is not {TYPE_WORDS[field_type]}"))
        return parsed.values
    if field_type == "list":
        return clean_list(source)
    typed = source.cast(target)  # Parquet, JSON: the reader already checked that the type fits
    if field_type == "number":  # NaN and infinity are not numbers a filter can compare (as in CSV)
        not_finite = _mask(pc.invert(pc.is_finite(typed)))
        if not_finite.any():
            checks.append((name, not_finite,
                           lambda i: f"column '{name}': {shown(typed[i].as_py())} is not {TYPE_WORDS[field_type]}"))
    return typed


def normalize_batch(batch: SourceBatch, spec: TableSpec) -> Normalized:
    n = batch.num_rows
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
        _status_rule(out, checks)
        _email_rule(out, checks)

    bad = np.zeros(n, dtype=bool)
    for _, mask, _ in checks:
        bad |= mask
    if batch.problems:
        bad[list(batch.problems)] = True
    positions = np.flatnonzero(bad)
    order = {name: i for i, name in enumerate([*spec.fields, *extras])}
    reasons = [_reason(int(i), batch.problems.get(int(i), {}), checks, order) for i in positions]
    held = _held(out, spec, positions)
    reasons = [reason + clause for reason, clause in zip(reasons, held.pop("clause"), strict=True)]
    raws, reasons = capped_raw(batch.raw(positions) if positions.size else [], reasons)

    good = pa.table({**out, ROW_COLUMN: pa.array(batch.row_numbers, pa.int64())})
    if positions.size:
        good = good.filter(pa.array(~bad))
    quarantine = pa.table(
        {
            "row_number": pa.array(batch.row_numbers[positions], pa.int64()),
            "reason": pa.array(reasons, pa.string()),
            "raw": pa.array(raws, pa.string()),
            **held,
        },
        schema=QUARANTINE_SCHEMA,
    )
    if batch.broken:
        none = [None] * len(batch.broken)
        broken_raws, broken_reasons = capped_raw([b.raw for b in batch.broken], [b.reason for b in batch.broken])
        broken = pa.table(
            {
                "row_number": [b.row_number for b in batch.broken],
                "reason": broken_reasons,
                "raw": broken_raws,
                "held_subscriber_id": none, "held_email": none, "held_status": none,
            },
            schema=QUARANTINE_SCHEMA,
        )
        quarantine = pa.concat_tables([quarantine, broken])
    return Normalized(good=good, quarantine=quarantine, extras=extras)


def _required_missing(name: str, i: int) -> str:
    return f"column '{name}' is required but missing"


def _held(out: dict[str, pa.Array], spec: TableSpec, positions: np.ndarray) -> dict[str, list]:
    """The held_* columns of the quarantined rows at `positions`, and the clause each
    row's reason gets when it still suppresses."""
    n = len(positions)
    empty: dict[str, list] = {"held_subscriber_id": [None] * n, "held_email": [None] * n, "held_status": [None] * n,
             "clause": [""] * n}
    if not n or spec.kind not in ("subscribers", "suppressions"):
        return empty
    take = pa.array(positions, pa.int64())

    def text(name: str) -> list:
        return out[name].take(take).cast(pa.string()).to_pylist() if name in out else [None] * n

    ids, emails = text("subscriber_id"), text("email")
    statuses = text("status") if spec.kind == "subscribers" else [None] * n
    for i in range(n):
        if spec.kind == "subscribers":
            status = (statuses[i] or "").strip().lower()
            holds = bool(status) and status != "active" and (ids[i] is not None or emails[i] is not None)
            if holds:
                who = " and ".join(x for x in (f"subscriber {shown(ids[i])}" if ids[i] is not None else "",
                                               f"address {shown(emails[i])}" if emails[i] is not None else "") if x)
                empty["clause"][i] = f"; status {shown(status)} still suppresses {who}"
        else:
            holds = emails[i] is not None
            if holds:
                empty["clause"][i] = f"; still suppresses address {shown(emails[i])}"
        if holds:
            empty["held_subscriber_id"][i] = ids[i]
            empty["held_email"][i] = emails[i]
            empty["held_status"][i] = statuses[i] or "suppressed"
    return empty


def _reason(position: int, given: dict[str, str], checks: list[Check], order: dict[str, int]) -> str:
    """One clause per column (its first problem), columns in table order."""
    by_column = dict(given)
    for name, mask, message in checks:
        if mask[position] and name not in by_column:
            by_column[name] = message(position)
    ranked = sorted(by_column.items(), key=lambda item: order.get(item[0], -1))
    return "; ".join(message for _, message in ranked)


def _status_rule(out: dict[str, pa.Array], checks: list[Check]) -> None:
    given = out["status"]
    lower = pc.utf8_lower(as_string_array(given))
    unknown = _mask(pc.and_(pc.is_valid(lower), pc.invert(pc.is_in(lower, pa.array(STATUSES)))))
    if unknown.any():
        allowed = ", ".join(STATUSES)
        checks.append(("status", unknown,
                       lambda i: f"column 'status': {shown(given[i].as_py())} is not one of {allowed}"))
    out["status"] = lower


def _email_rule(out: dict[str, pa.Array], checks: list[Check]) -> None:
    email = out["email"]
    valid = pc.and_(pc.match_substring_regex(email, _EMAIL), pc.less_equal(pc.utf8_length(email), MAX_EMAIL_CHARS))
    invalid = _mask(pc.and_(pc.is_valid(email), pc.invert(valid)))
    if invalid.any():
        checks.append(("email", invalid,
                       lambda i: f"column 'email': {shown(email[i].as_py())} is not a valid email address"))
