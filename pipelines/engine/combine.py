"""The last step of an evaluation: segments from their filters' results, as bitmaps.

An engine evaluates the *leaves* of every definition with its own compiler
(DuckDB SQL or Polars expressions): each distinct field filter once (per
distinct value where that pays, see `encoded.py`) and each distinct event
aggregate once. What is left is the same for every engine and needs no
query at all: per segment, in dependency-wave order, the tree of its
filters (segments/tree.py) over the leaves' results.

Every value is a never-null Arrow boolean array (a bitmap), so each step is
one pass over N/8 bytes: for 100 segments over 1M subscribers, tens of
milliseconds, where evaluating the same expressions row by row in a query
costs seconds (`make bench` reports our evaluation against one query per
segment).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..core.flags import bitmap
from ..segments.model import EventFilter, FieldFilter, Project
from ..segments.operators import COMPARISONS
from ..segments.plan import EvaluationPlan
from ..segments.tree import Backend, walk


@dataclass
class EventCounts:
    """Event counts of the subscribers that have any: `rows` (sorted subscriber
    rows) and `counts[i, k]`, how many of row `rows[i]`'s events match aggregate
    `k` (`keys[k]`, an `EventFilter.aggregate_key()`). Every other row counts 0.

    Sparse on purpose: at 10M subscribers a dense int64 array per aggregate
    would take 80 MB each."""

    rows: np.ndarray
    counts: np.ndarray
    keys: list[str]

    @classmethod
    def none(cls, keys: Sequence[str] = ()) -> EventCounts:
        return cls(np.zeros(0, np.int64), np.zeros((0, len(keys)), np.int32), list(keys))

    def column(self, key: str) -> np.ndarray:
        return self.counts[:, self.keys.index(key)]

    def dense(self, key: str, n: int) -> np.ndarray:
        """The count of every row (tests and debugging)."""
        out = np.zeros(n, dtype=np.int64)
        out[self.rows] = self.column(key)
        return out

    def holds(self, key: str, op: str, value: int, n: int) -> np.ndarray:
        """Per row, whether `count op value` holds (a row without events counts 0)."""
        compare = COMPARISONS[op]
        out = np.full(n, bool(compare(0, value)), dtype=bool)
        out[self.rows] = compare(self.column(key), value)
        return out


def combine_segments(
    project: Project,
    plan: EvaluationPlan,
    n: int,
    field_result: Callable[[FieldFilter], pa.Array],
    event_counts: EventCounts,
) -> dict[str, pa.Array]:
    """key -> membership bitmap (length n) of every segment of the plan.

    `field_result(f)` is the never-null result of field filter `f`.
    """
    results: dict[str, pa.Array] = {}
    event_cache: dict[tuple, pa.Array] = {}

    def performed(f: EventFilter) -> pa.Array:
        key = (f.aggregate_key(), f.count.op, f.count.value)
        if key not in event_cache:
            event_cache[key] = bitmap(event_counts.holds(f.aggregate_key(), f.count.op, f.count.value, n))
        return event_cache[key]

    backend = Backend(
        lambda parts: functools.reduce(pc.and_, parts) if parts else bitmap(np.ones(n, dtype=bool)),
        lambda parts: functools.reduce(pc.or_, parts) if parts else bitmap(np.zeros(n, dtype=bool)),
        pc.invert, field_result, performed, results.__getitem__,
    )
    for wave in plan.waves:
        for key in wave:
            results[key] = walk(project.segments[key], backend)
    return results


# Event rows handled at a time by the bit-by-bit count (bounds the temporary arrays).
_CHUNK = 1 << 22
# Above this many distinct masks, counting combination by combination stops paying.
_MAX_COMBINATIONS = 4096


def aggregate_counts(rows: np.ndarray, masks: Sequence[np.ndarray], keys: Sequence[str]) -> EventCounts:
    """Per aggregate, how many event rows of each subscriber match it.

    `rows[i]` is the subscriber row of event i; bit `k % 64` of `masks[k // 64][i]`
    says whether event i matches aggregate k (the engine computed the bits).
    Counting is `bincount` over the events' compact row numbers: linear, no sort
    of the events by row (a sort cost three times as much at 20M events, measured).

    Events carry few distinct masks (an event's name, time and properties decide
    them: 40 at 10M subscribers x 100 segments), so the events are grouped by
    mask first and each aggregate counts only the groups whose mask has its bit:
    about as many rows as it has hits, instead of every event once per aggregate
    (2-3x faster at 7M events x 22 aggregates, measured).
    """
    rows = np.asarray(rows, dtype=np.int64)
    if not len(rows):
        return EventCounts.none(keys)
    present = np.bincount(rows)  # row numbers are >= 0
    unique = np.flatnonzero(present)
    compact = np.cumsum(present > 0, dtype=np.int64) - 1  # row -> its index in `unique`
    del present
    at = compact[rows]
    del compact
    counts = np.zeros((len(keys), len(unique)), dtype=np.int32)  # one contiguous row per aggregate
    for w, word in enumerate(masks):
        word = np.asarray(word, dtype=np.uint64)
        width = min(64, len(keys) - 64 * w)
        grouped = _by_combination(word)
        if grouped is None:
            _count_bit_by_bit(at, word, counts[64 * w:64 * w + width])
            continue
        combinations, bounds, order = grouped
        at_grouped = at[order]
        for j in range(width):
            parts = [at_grouped[bounds[c]:bounds[c + 1]]
                     for c, combination in enumerate(combinations) if (int(combination) >> j) & 1]
            if parts:
                counts[64 * w + j] = np.bincount(np.concatenate(parts), minlength=len(unique))
    return EventCounts(unique, counts.T, list(keys))


def _by_combination(word: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(distinct masks, group bounds, event order grouping the events by mask),
    or None when there are too many distinct masks for grouping to pay."""
    encoded = pc.dictionary_encode(pa.array(word))
    combinations = encoded.dictionary.to_numpy()
    if len(combinations) > _MAX_COMBINATIONS:
        return None
    codes = encoded.indices.to_numpy().astype(np.uint8 if len(combinations) <= 256 else np.uint16)
    order = np.argsort(codes, kind="stable")  # a radix sort for 8 and 16-bit codes
    bounds = np.searchsorted(codes[order], np.arange(len(combinations) + 1))
    return combinations, bounds, order


def _count_bit_by_bit(at: np.ndarray, word: np.ndarray, out: np.ndarray) -> None:
    """`out[j]` += per compact row, the events with bit j set, one chunk at a time."""
    for lo in range(0, len(at), _CHUNK):
        chunk_at, packed = at[lo:lo + _CHUNK], word[lo:lo + _CHUNK]
        for j in range(len(out)):
            hit = (packed & np.uint64(1 << j)) != 0
            out[j] += np.bincount(chunk_at[hit], minlength=out.shape[1]).astype(np.int32)
