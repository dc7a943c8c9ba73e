"""The benchmark's equality checks (bench/run.py): the fast fingerprint must never
call different multisets of rows equal, and must not care about row order."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

_spec = importlib.util.spec_from_file_location("bench_run", Path(__file__).resolve().parents[1] / "bench" / "run.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

BASE = [("a", "s1"), ("a", "s2"), ("b", "s1"), ("b", "O'Brien"), ("c", "ü%_")]


def _write(path: Path, rows: list[tuple[str, str]]) -> Path:
    pq.write_table(pa.table({"segment": [r[0] for r in rows], "subscriber_id": [r[1] for r in rows]},
                            schema=pa.schema([("segment", pa.string()), ("subscriber_id", pa.string())])), path)
    return path


@pytest.mark.parametrize(("theirs", "differ"), [
    (list(reversed(BASE)), 0),  # order does not matter
    (BASE[:-1], 1),  # a member missing
    (BASE + [("a", "s1")], 1),  # a duplicate is a difference (multisets)
    (BASE[:-1] + [("c", "u%_")], 2),  # one changed row: one on each side
    ([(sid, seg) for seg, sid in BASE], 10),  # columns swapped
    ([], 5),
])
def test_same_membership_compares_multisets(tmp_path, theirs, differ):
    ours = _write(tmp_path / "ours.parquet", BASE)
    other = _write(tmp_path / "theirs.parquet", theirs)
    equal, rows, found = bench.same_membership(ours, other)
    assert (equal, rows, found) == (differ == 0, len(BASE), differ)
