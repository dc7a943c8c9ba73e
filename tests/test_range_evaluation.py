"""A large snapshot is evaluated one subscriber-id range at a time, with the same result.

Lake files are stored sorted by subscriber_id, so `snapshot_ranges` cuts a
snapshot along its row groups, and events are matched to a range by id. The
row groups are made as small as DuckDB writes them here (2,048 rows; the lake
writes 512K-row groups) so that a few thousand subscribers span several ranges.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_incremental import run, write_definitions

from pipelines.core.settings import Paths
from pipelines.lake import parts as lake_parts
from pipelines.lake.ingest import ingest_landing
from pipelines.lake.snapshots import list_snapshots, read_events, read_snapshot, snapshot_ranges
from pipelines.run.prepare import load_valid_project
from pipelines.sample_data import write_landing

AS_OF = datetime(2026, 11, 1)


@pytest.fixture
def small_row_groups(monkeypatch):
    monkeypatch.setattr(lake_parts, "ROW_GROUP_ROWS", 2048)


def _landing(root: Path, n: int) -> Paths:
    paths = Paths(defs=write_definitions(root / "defs", 40, 5), data=root / "data")
    write_landing(paths, as_of=AS_OF, n_subscribers=n, fmt="parquet")
    return paths


def test_ranges_cover_the_snapshot_in_order_and_events_follow_them(tmp_path, small_row_groups):
    paths = _landing(tmp_path, 10_000)
    catalog = load_valid_project(paths).catalog
    ingest_landing(paths, catalog)
    snapshot = list_snapshots(paths)[-1]
    ranges = snapshot_ranges(snapshot, 4100)
    assert [r.row_groups for r in ranges] == [(0, 1), (2, 3), (4,)]  # 4 x 2,048 rows and 1,808
    assert [r.rows for r in ranges] == [4096, 4096, 1808]
    assert ranges[0].low is None and ranges[-1].high is None
    assert all(a.high == b.low for a, b in zip(ranges, ranges[1:], strict=False))

    whole = read_snapshot(snapshot, catalog, ["subscriber_id"]).column("subscriber_id").to_pylist()
    pieces = [read_snapshot(snapshot, catalog, ["subscriber_id"], id_range=r).column("subscriber_id").to_pylist()
              for r in ranges]
    assert sum(pieces, []) == whole
    for r, ids in zip(ranges, pieces, strict=True):
        assert (r.low is None or min(ids) == r.low) and (r.high is None or max(ids) < r.high)

    events = read_events(paths, catalog, columns=["event_id", "subscriber_id"])
    by_range = [read_events(paths, catalog, columns=["event_id", "subscriber_id"], id_range=r) for r in ranges]
    assert sorted(sum((t.column("event_id").to_pylist() for t in by_range), [])) == \
        sorted(events.column("event_id").to_pylist())
    for r, table in zip(ranges, by_range, strict=True):
        ids = set(pieces[ranges.index(r)])
        assert set(table.column("subscriber_id").to_pylist()) <= ids


def test_event_files_are_stored_in_subscriber_id_order(tmp_path, small_row_groups):
    paths = _landing(tmp_path, 500)
    ingest_landing(paths, load_valid_project(paths).catalog)
    (events_file,) = (paths.lake / "events").rglob("*.parquet")
    ids = pq.read_table(events_file, columns=["subscriber_id"]).column("subscriber_id").to_pylist()
    assert len(ids) > 500 and ids == sorted(ids, key=lambda s: s.encode("utf-8"))


def test_a_snapshot_not_in_id_order_is_one_range(tmp_path):
    """A lake file written before snapshots were sorted: no ranges are trusted."""
    from pipelines.lake.snapshots import SnapshotInfo

    target = tmp_path / "unsorted.parquet"
    pq.write_table(pa.table({"subscriber_id": ["b", "c", "a", "d"]}), target, row_group_size=2)
    info = SnapshotInfo(snapshot_at=AS_OF, file=target, source="x", rows=4, sha256="")
    assert [r.row_groups for r in snapshot_ranges(info, 2)] == [(0, 1)]


def _published(paths: Paths, sql: str):
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_a_run_by_ranges_publishes_what_a_run_in_one_piece_does(tmp_path, small_row_groups, monkeypatch):
    """Both runs' steps, on two copies of one lake: the first evaluated in ranges of
    one row group (2,048 subscribers), the other in one piece."""
    paths = _landing(tmp_path / "a", 7000)
    ingest_landing(paths, load_valid_project(paths).catalog)
    other = Paths(defs=paths.defs, data=tmp_path / "b")
    shutil.copytree(paths.data, other.data)
    assert len(snapshot_ranges(list_snapshots(paths)[-1], 2048)) == 4

    at = AS_OF + timedelta(hours=1)
    monkeypatch.setenv("SEGMENTS_RANGE_ROWS", "2048")
    run(paths, at)
    monkeypatch.setenv("SEGMENTS_RANGE_ROWS", str(10**9))
    run(other, at)
    members = "SELECT segment, subscriber_id FROM segment_membership ORDER BY ALL"
    assert len(_published(paths, members)) > 7000
    for sql in (members, "SELECT * EXCLUDE (run_id) FROM recipients ORDER BY ALL",
                "SELECT segment, members FROM segments ORDER BY ALL"):
        assert _published(paths, sql) == _published(other, sql), sql


def test_range_rows_setting(monkeypatch):
    from pipelines.core.settings import DEFAULT_RANGE_ROWS, range_rows
    from pipelines.errors import UserError

    monkeypatch.delenv("SEGMENTS_RANGE_ROWS", raising=False)
    assert range_rows() == DEFAULT_RANGE_ROWS
    monkeypatch.setenv("SEGMENTS_RANGE_ROWS", "3_000_000")
    assert range_rows() == 3_000_000
    for bad in ("lots", "0", "-5"):
        monkeypatch.setenv("SEGMENTS_RANGE_ROWS", bad)
        with pytest.raises(UserError, match="SEGMENTS_RANGE_ROWS"):
            range_rows()
