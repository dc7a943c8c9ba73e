"""Pieces of the fast evaluation path, checked against obvious implementations:
event counts summed from bit masks and filters evaluated per distinct value."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.core.flags import bitmap, bools, one_array
from pipelines.engine import combine
from pipelines.engine.combine import aggregate_counts
from pipelines.engine.encoded import gather_luts


def _dense(counts: combine.EventCounts, key: str, n: int) -> np.ndarray:
    """The count of every row (0 for a row without events)."""
    out = np.zeros(n, dtype=np.int64)
    out[counts.rows] = counts.counts[:, counts.keys.index(key)]
    return out


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.integers(0, 30), max_size=300),
    aggregates=st.integers(1, 130),
    seed=st.integers(0, 10_000),
    chunk=st.sampled_from([1, 2, 7, 1 << 22]),
    max_combinations=st.sampled_from([0, 3, 4096]),  # 0: always bit by bit
    density=st.sampled_from([0.05, 0.4]),
)
def test_aggregate_counts_match_a_plain_count(rows, aggregates, seed, chunk, max_combinations, density):
    rng = np.random.default_rng(seed)
    rows = np.array(rows, dtype=np.int64)
    bits = rng.random((len(rows), aggregates)) < density
    words = []
    for w in range(0, aggregates, 64):
        word = np.zeros(len(rows), dtype=np.uint64)
        for j in range(min(64, aggregates - w)):
            word |= bits[:, w + j].astype(np.uint64) << np.uint64(j)
        words.append(word)
    keys = [f"k{i}" for i in range(aggregates)]
    original = combine._CHUNK, combine._MAX_COMBINATIONS
    combine._CHUNK, combine._MAX_COMBINATIONS = chunk, max_combinations
    try:
        counts = aggregate_counts(rows, words, keys)
    finally:
        combine._CHUNK, combine._MAX_COMBINATIONS = original
    for k, key in enumerate(keys):
        expected = np.bincount(rows[bits[:, k]], minlength=31) if len(rows) else np.zeros(31, np.int64)
        assert np.array_equal(_dense(counts, key, 31), expected[:31])
    for op, value in (("gte", 1), ("lt", 2), ("is", 0)):
        holds = counts.holds(keys[0], op, value, 31)
        dense = _dense(counts, keys[0], 31)
        expected = {"gte": dense >= value, "lt": dense < value, "is": dense == value}[op]
        assert np.array_equal(holds, expected)


def test_encoded_list_filters_match_plain_evaluation():
    from datetime import datetime

    from pipelines.engine.duckdb_engine import evaluate_flags_duckdb
    from pipelines.segments.model import FieldFilter, Group, Project, Segment

    tags = [["VIP", "news"], [], None, ["vip"], ["a"] * 3 + ["News"], [None, "b"], ["b", "B"]] * 3
    subscribers = pa.table({"subscriber_id": [f"s{i:02d}" for i in range(len(tags))],
                            "tags": pa.array(tags, pa.list_(pa.string()))})
    filters = [("has_any", ("vip", "b")), ("has_all", ("news", "VIP")), ("has_none", ("b",)), ("has_all", ("B",))]
    project = Project(segments={
        f"t{i}": Segment(key=f"t{i}", name="t", groups=(Group(filters=(FieldFilter(field="tags", op=op, value=v),)),))
        for i, (op, v) in enumerate(filters)})
    events = pa.table({"event_id": pa.array([], pa.string())})
    encoded = evaluate_flags_duckdb(project, subscribers, events, datetime(2026, 1, 1), encode=True)
    plain = evaluate_flags_duckdb(project, subscribers, events, datetime(2026, 1, 1), encode=False)
    assert encoded.equals(plain)


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 6), min_size=0, max_size=5), data=st.data())
def test_take_rows_chunk_by_chunk_equals_take(sizes, data):
    """`take_rows` (used where a string column passes 2 GiB) picks what `take` picks."""
    from pipelines.core.flags import take_rows

    values = [f"v{i}" if i % 3 else None for i in range(sum(sizes))]
    chunks, start = [], 0
    for size in sizes:
        chunks.append(pa.array(values[start:start + size], pa.string()))
        start += size
    column = pa.chunked_array(chunks, pa.string())
    rows = np.array(sorted(data.draw(st.lists(st.integers(0, max(len(values) - 1, 0)), unique=True)
                                     if values else st.just([]))), dtype=np.int64)
    taken = take_rows(column, rows)
    assert taken.to_pylist() == [values[r] for r in rows]
    assert take_rows(column.combine_chunks() if values else pa.array([], pa.string()), rows).to_pylist() == \
        taken.to_pylist()


@pytest.mark.parametrize("flags", [
    pa.array([], pa.bool_()),
    pa.array([True, False, True, True, False, False, True, False, True, True]),
    pa.array([True, False, True, True, False, False, True, False, True, True]).slice(3, 6),  # an offset
    pa.chunked_array([pa.array([True, False, True]), pa.array([False] * 9 + [True])]),
    pa.chunked_array([], pa.bool_()),
])
def test_bools_unpacks_a_bitmap_like_to_pylist(flags):
    assert bools(flags).tolist() == flags.to_pylist()


@given(values=st.lists(st.booleans(), max_size=70))
def test_bitmap_packs_numpy_bools_into_an_arrow_array(values):
    packed = bitmap(np.array(values, dtype=bool))
    assert packed.type == pa.bool_() and packed.null_count == 0
    assert packed.to_pylist() == values
    assert packed.equals(pa.array(values, pa.bool_()))


def test_bools_refuses_nulls_and_one_array_shares_a_single_chunk():
    with pytest.raises(ValueError, match="nulls"):
        bools(pa.array([True, None]))
    column = pa.chunked_array([pa.array(["a", "b"])])
    assert one_array(column).buffers()[2].address == column.chunk(0).buffers()[2].address
    assert one_array(pa.chunked_array([pa.array(["a"]), pa.array(["b"])])).to_pylist() == ["a", "b"]


@settings(max_examples=60, deadline=None)
@given(distinct=st.integers(1, 300), rows=st.integers(0, 2000), filters=st.integers(1, 150), seed=st.integers(0, 10**6))
def test_gathered_luts_equal_one_gather_per_lut(distinct, rows, filters, seed):
    """Packing the per-value results of many filters as bits and gathering once
    gives each filter's own lut[codes] (across the 64-bit word boundaries too)."""
    rng = np.random.default_rng(seed)
    luts = [rng.random(distinct) < rng.random() for _ in range(filters)]
    codes = rng.integers(0, distinct, rows)
    gathered = gather_luts(luts, codes)
    assert len(gathered) == filters
    for lut, result in zip(luts, gathered, strict=True):
        assert result.dtype == bool and np.array_equal(result, lut[codes])
