"""A tiny evaluator of the segment language written from the spec alone
(segment-language.md, "Semantics"), in plain Python: no sqlglot, DuckDB or
Polars. The differential tests check every engine against it.

Rows are dicts of Python values: str / int / float / bool / date / naive
datetime (UTC) / list of str, or None when missing. It is slow on purpose:
obvious code, one subscriber at a time.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, time, timedelta
from typing import Any

from pipelines.segments.model import EventFilter, FieldFilter, Project, Segment, SegmentFilter

# Rule 3, spelled out: negative operator -> its positive partner.
COMPLEMENTS = {
    "is_not": "is",
    "not_in": "in",
    "not_contains": "contains",
    "has_none": "has_any",
    "is_not_set": "is_set",
    "not_in_last_days": "in_last_days",
}


def _days_before(as_of: datetime, days: int) -> datetime:
    try:
        return as_of - timedelta(days=days)
    except OverflowError:
        return datetime.min


def fold(text: str) -> str:
    """Rule 4's lower-casing, as the project documents it (pipelines/segments/case.py):
    'İ' is 'i', and the final sigma 'ς' is 'σ', so every engine agrees."""
    return text.replace("İ", "i").lower().replace("ς", "σ")


def field_holds(op: str, field_type: str, expected: Any, actual: Any, as_of: datetime) -> bool:
    """Does `field op expected` hold for a subscriber (or event) whose value is `actual`?"""
    if op in COMPLEMENTS:
        return not field_holds(COMPLEMENTS[op], field_type, expected, actual, as_of)
    if field_type == "list":
        tags = [fold(t) for t in (actual or []) if t is not None]  # missing list = empty list
        if op == "is_set":
            return len(tags) > 0
        wanted = [fold(v) for v in expected]
        if op == "has_any":
            return any(w in tags for w in wanted)
        if op == "has_all":
            return all(w in tags for w in wanted)
        raise ValueError(op)
    if op == "is_set":
        return actual is not None
    if actual is None:
        return False  # rule 2: a positive operator on a missing value does not hold
    if field_type == "string":
        value = fold(actual)
        if op == "is":
            return value == fold(expected)
        if op == "in":
            return value in [fold(e) for e in expected]
        if op == "contains":
            return fold(expected) in value
        if op == "starts_with":
            return value.startswith(fold(expected))
        if op == "ends_with":
            return value.endswith(fold(expected))
    if field_type in ("integer", "number"):
        if op == "is":
            return actual == expected
        if op == "in":
            return any(actual == e for e in expected)
        if op == "gt":
            return actual > expected
        if op == "gte":
            return actual >= expected
        if op == "lt":
            return actual < expected
        if op == "lte":
            return actual <= expected
        if op == "between":
            return expected[0] <= actual <= expected[1]
    if field_type == "boolean" and op == "is":
        return actual is expected
    if field_type in ("date", "timestamp"):
        day = actual if field_type == "date" else actual.date()
        instant = datetime.combine(actual, time()) if field_type == "date" else actual
        if op == "before":
            return day < expected
        if op == "after":
            return day > expected
        if op == "on":
            return day == expected
        if op == "between":
            return expected[0] <= day <= expected[1]
        if op == "in_last_days":
            return _days_before(as_of, expected) <= instant <= as_of
    raise ValueError(f"operator {op} on {field_type}")


def count_holds(op: str, expected: int, n: int) -> bool:
    return {"gt": n > expected, "gte": n >= expected, "lt": n < expected, "lte": n <= expected, "is": n == expected}[op]


def _event_counts(f: EventFilter, own_events: list[dict], project: Project, as_of: datetime) -> int:
    n = 0
    for e in own_events:
        if e["event"] != f.event or e["occurred_at"] > as_of:
            continue
        if f.in_last_days is not None and e["occurred_at"] < _days_before(as_of, f.in_last_days):
            continue
        if all(
            field_holds(w.op, project.catalog.event[w.field], w.value, e.get(w.field), as_of) for w in f.where
        ):
            n += 1
    return n


def reference_membership(
    project: Project, subscribers: list[dict], events: list[dict], as_of: datetime
) -> set[tuple[str, str]]:
    """{(segment, subscriber_id)} for every member of every segment."""
    events_of: dict[str, list[dict]] = {}
    for e in events:
        events_of.setdefault(e["subscriber_id"], []).append(e)
    memo: dict[tuple[str, str], bool] = {}

    def in_segment(key: str, sub: dict) -> bool:
        cache_key = (key, sub["subscriber_id"])
        if cache_key not in memo:
            memo[cache_key] = segment_holds(project.segments[key], sub)
        return memo[cache_key]

    def filter_holds(f: Any, sub: dict) -> bool:
        if isinstance(f, FieldFilter):
            return field_holds(f.op, project.catalog.subscriber[f.field], f.value, sub.get(f.field), as_of)
        if isinstance(f, SegmentFilter):
            member = in_segment(f.segment, sub)
            return not member if f.op == "is_not" else member
        if isinstance(f, EventFilter):
            n = _event_counts(f, events_of.get(sub["subscriber_id"], []), project, as_of)
            performed = count_holds(f.count.op, f.count.value, n)
            return not performed if f.op == "not_performed" else performed
        raise TypeError(f)

    def segment_holds(seg: Segment, sub: dict) -> bool:
        results = []
        for group in seg.groups:
            held = [filter_holds(f, sub) for f in group.filters]
            if group.match == "all":
                results.append(all(held))
            elif group.match == "any":
                results.append(any(held))
            else:  # none: no filter holds
                results.append(not any(held))
        return all(results) if seg.match == "all" else any(results)

    return {(key, sub["subscriber_id"]) for key in project.segments for sub in subscribers if in_segment(key, sub)}


def held_out(subscriber_id: str, salt: str, percent: float) -> bool:
    """Audience holdout: depends only on subscriber_id and salt (segment-language.md)."""
    bucket = int.from_bytes(hashlib.sha256(f"{salt}:{subscriber_id}".encode()).digest()[:8], "big") % 10000
    return bucket < percent * 100


def _address(email: str) -> str:
    return email.strip().lower()


def reference_recipients(
    audiences: dict[str, dict],
    membership: set[tuple[str, str]],
    subscribers: list[dict],
    suppression_list: Iterable[str] = (),
    *,
    by_address: bool = True,
) -> set[tuple[str, str, str, str]]:
    """{(audience, subscriber_id, email, group)} for every recipient of every audience.

    `audiences`: key -> {"include": [...], "exclude": [...], "holdout": {"percent", "salt"} or absent},
    as written in the definition files. Recipients = members of any include minus members of
    any exclude minus every suppressed address: an address (trimmed, case-insensitive) is
    suppressed when any row of the snapshot carrying it is not `active`, or when it is on the
    suppression list. One recipient per address per audience, the smallest subscriber_id.
    `by_address=False` is the older rule (each subscriber's own status only, no list, no
    de-duplication), for a branch that has not built suppression by address yet.
    """
    suppressed = {_address(e) for e in suppression_list} if by_address else set()
    if by_address:
        suppressed |= {_address(s["email"]) for s in subscribers if s["status"] != "active"}
    members: dict[str, set[str]] = {}
    for segment, sid in membership:
        members.setdefault(segment, set()).add(sid)
    rows = {s["subscriber_id"]: s for s in subscribers}
    out: set[tuple[str, str, str, str]] = set()
    for key, audience in audiences.items():
        chosen = set().union(*(members.get(k, set()) for k in audience["include"]))
        chosen -= set().union(*(members.get(k, set()) for k in audience.get("exclude") or []))
        kept: dict[str, str] = {}  # address -> smallest subscriber_id
        for sid in sorted(chosen):
            row = rows[sid]
            if row["status"] != "active" or _address(row["email"]) in suppressed:
                continue
            if by_address:
                kept.setdefault(_address(row["email"]), sid)
            else:
                kept[sid] = sid
        holdout = audience.get("holdout") or {}
        for sid in kept.values():
            group = "holdout" if holdout and held_out(sid, str(holdout["salt"]), holdout["percent"]) else "send"
            out.add((key, sid, rows[sid]["email"], group))
    return out


def reference_history(runs: list[tuple[datetime, set[str], set[tuple[str, str]]]]) -> dict[str, set[tuple]]:
    """The history relations after a sequence of published runs, replayed from scratch.

    `runs`: (as_of, defined segment keys, {(segment, subscriber_id)}) in publish order, one
    per as_of (a run at the same as_of as the last replaces it; pass only the survivor).
    Returns {"history": {(segment, sid, valid_from, valid_to | None)},
             "changes": {(as_of, segment, sid, "entered" | "exited")},
             "sizes": {(as_of, segment, members, entered, exited)}}.
    A stay opens at the first run that has the membership and closes at the first that
    does not; a segment no longer defined closes its stays then and still gets one size row.
    """
    history: set[tuple] = set()
    changes: set[tuple] = set()
    sizes: set[tuple] = set()
    open_since: dict[tuple[str, str], datetime] = {}
    previous_keys: set[str] = set()
    for as_of, keys, membership in runs:
        entered = membership - set(open_since)
        exited = set(open_since) - membership
        for pair in exited:
            history.add((*pair, open_since.pop(pair), as_of))
            changes.add((as_of, *pair, "exited"))
        for pair in entered:
            open_since[pair] = as_of
            changes.add((as_of, *pair, "entered"))
        members, ins, outs = (Counter(s for s, _ in pairs) for pairs in (membership, entered, exited))
        for segment in keys | previous_keys | set(outs):
            sizes.add((as_of, segment, members[segment], ins[segment], outs[segment]))
        previous_keys = keys
    history |= {(*pair, since, None) for pair, since in open_since.items()}
    return {"history": history, "changes": changes, "sizes": sizes}


def reference_members_at(runs: list[tuple[datetime, set[str], set[tuple[str, str]]]], segment: str,
                         ts: datetime) -> set[str]:
    """Members of `segment` at `ts`: the membership of the last published run at or before ts."""
    current: set[tuple[str, str]] = set()
    for as_of, _, membership in runs:
        if as_of <= ts:
            current = membership
    return {sid for seg, sid in current if seg == segment}


__all__ = ["COMPLEMENTS", "count_holds", "field_holds", "held_out", "reference_history", "reference_members_at",
           "reference_membership", "reference_recipients"]
