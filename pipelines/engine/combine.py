"""The last step of an evaluation: segments from their filters' results, as bitmaps.

An engine evaluates the *leaves* of every definition with its own compiler
(DuckDB SQL or Polars expressions): each distinct field filter once (per
distinct value where that pays, see `encoded.py`) and each distinct event
aggregate once. What is left is the same for every engine and needs no
query at all: per segment, in dependency-wave order,

    field filter     -> its result column
    event filter     -> count comparison (`count`), negated for not_performed
    segment filter   -> the referenced segment's result (negated for is_not)
    group / segment  -> AND (all), OR (any), NOT OR (none) of the above

Every value is a never-null Arrow boolean array (a bitmap), so each step is
one pass over N/8 bytes: for 100 segments over 1M subscribers, tens of
milliseconds, where evaluating the same expressions row by row in a query
costs seconds (measured in bench/README.md).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..segments.model import EventFilter, FieldFilter, Filter, Project, SegmentFilter
from ..segments.plan import EvaluationPlan

_COUNT_OPS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "is": operator.eq,
}


def _all(parts: Sequence[pa.Array], n: int) -> pa.Array:
    if not parts:
        return pa.array(np.ones(n, dtype=bool))
    result = parts[0]
    for part in parts[1:]:
        result = pc.and_(result, part)
    return result


def _any(parts: Sequence[pa.Array], n: int) -> pa.Array:
    if not parts:
        return pa.array(np.zeros(n, dtype=bool))
    result = parts[0]
    for part in parts[1:]:
        result = pc.or_(result, part)
    return result


def _combine(match: str, parts: Sequence[pa.Array], n: int) -> pa.Array:
    if match == "all":
        return _all(parts, n)
    if match == "any":
        return _any(parts, n)
    if match == "none":
        return pc.invert(_any(parts, n))
    raise ValueError(f"unknown match '{match}'")


def combine_segments(
    project: Project,
    plan: EvaluationPlan,
    n: int,
    field_result: Callable[[FieldFilter], pa.Array],
    event_counts: Mapping[str, np.ndarray],
) -> dict[str, pa.Array]:
    """key -> membership bitmap (length n) of every segment of the plan.

    `field_result(f)` is the never-null result of field filter `f`;
    `event_counts[aggregate_key]` the int64 count per row (0 without events).
    """
    results: dict[str, pa.Array] = {}
    event_cache: dict[tuple, pa.Array] = {}

    def event_result(f: EventFilter) -> pa.Array:
        key = (f.aggregate_key(), f.count.op, f.count.value)
        if key not in event_cache:
            event_cache[key] = pa.array(_COUNT_OPS[f.count.op](event_counts[f.aggregate_key()], f.count.value))
        performed = event_cache[key]
        return pc.invert(performed) if f.op == "not_performed" else performed

    def leaf(f: Filter) -> pa.Array:
        if isinstance(f, FieldFilter):
            return field_result(f)
        if isinstance(f, SegmentFilter):
            member = results[f.segment]
            return pc.invert(member) if f.op == "is_not" else member
        if isinstance(f, EventFilter):
            return event_result(f)
        raise TypeError(f"unknown filter {f!r}")

    for wave in plan.waves:
        for key in wave:
            segment = project.segments[key]
            groups = [_combine(g.match, [leaf(f) for f in g.filters], n) for g in segment.groups]
            results[key] = _combine(segment.match, groups, n)
    return results


def aggregate_counts(rows: np.ndarray, masks: Sequence[np.ndarray], n_aggregates: int, n: int) -> list[np.ndarray]:
    """Per aggregate, how many event rows of each subscriber match it.

    `rows[i]` is the subscriber row of event i; bit `k % 64` of `masks[k // 64][i]`
    says whether event i matches aggregate k (the engine computed the bits).
    """
    counts = []
    rows = np.asarray(rows, dtype=np.int64)
    for k in range(n_aggregates):
        word = masks[k // 64]
        hit = (word & np.uint64(1 << (k % 64))) != 0
        counts.append(np.bincount(rows[hit], minlength=n).astype(np.int64, copy=False))
    return counts
