"""Reading the lake back: snapshot choice by time, events by as_of, catalog changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.core.settings import Paths
from pipelines.errors import UserError
from pipelines.lake.ingest import ingest_landing
from pipelines.lake.snapshots import list_snapshots, read_events, read_snapshot, snapshot_at_or_before
from pipelines.segments.fields import FieldCatalog


@pytest.fixture
def paths(tmp_path) -> Paths:
    p = Paths(defs=tmp_path / "defs", data=tmp_path / "data")
    p.landing_subscribers.mkdir(parents=True)
    p.landing_events.mkdir(parents=True)
    return p


def test_snapshot_at_or_before_picks_the_latest_not_after_as_of(paths):
    for stamp, rows in [("20240101T000000Z", 1), ("20240103T120000Z", 2), ("20240102T000000Z", 3)]:
        body = "".join(f"s{i},s{i}@example.com,active\n" for i in range(rows))
        (paths.landing_subscribers / f"subs_{stamp}.csv").write_text("subscriber_id,email,status\n" + body)
    ingest_landing(paths, FieldCatalog())
    assert [s.rows for s in list_snapshots(paths)] == [1, 3, 2]
    assert snapshot_at_or_before(paths, datetime(2023, 12, 31)) is None
    assert snapshot_at_or_before(paths, datetime(2024, 1, 1)).rows == 1  # inclusive
    assert snapshot_at_or_before(paths, datetime(2024, 1, 3, 11, 59)).rows == 3
    assert snapshot_at_or_before(paths, datetime(2030, 1, 1)).rows == 2
    # An aware as_of is compared in UTC: 13:00 at +02:00 is 11:00 UTC, before the 12:00 snapshot.
    aware = datetime(2024, 1, 3, 13, 0, tzinfo=timezone(timedelta(hours=2)))
    assert snapshot_at_or_before(paths, aware).rows == 3
    assert snapshot_at_or_before(paths, datetime(2024, 1, 3, 12, 0, tzinfo=UTC)).rows == 2


def test_read_events_up_to_as_of_inclusive(paths):
    (paths.landing_events / "ev_20240110T000000Z.csv").write_text(
        "event_id,subscriber_id,event,occurred_at\n"
        "e1,s1,open,2024-01-01T00:00:00Z\ne2,s1,open,2024-01-02T00:00:00Z\ne3,s1,open,2024-01-03T00:00:00Z\n")
    (paths.landing_events / "ev_20240111T000000Z.csv").write_text(
        "event_id,subscriber_id,event,occurred_at\ne4,s1,open,2024-01-02T00:00:00.000001Z\n")
    ingest_landing(paths, FieldCatalog())
    ids = read_events(paths, FieldCatalog(), as_of=datetime(2024, 1, 2)).column("event_id").to_pylist()
    assert sorted(ids) == ["e1", "e2"]
    assert read_events(paths, FieldCatalog()).num_rows == 4


def test_columns_declared_after_ingest_are_typed_on_read(paths):
    """An undeclared column is kept as text; once declared, reads type it by the ingest rules."""
    (paths.landing_subscribers / "subs_20240101T000000Z.csv").write_text(
        "subscriber_id,email,status,loyalty_points,vip\n"
        "s1,a@example.com,active,120,TRUE\ns2,b@example.com,active,lots,maybe\n")
    report = ingest_landing(paths, FieldCatalog())
    assert len([w for w in report.warnings if "undeclared column" in w]) == 2
    [info] = list_snapshots(paths)
    before = read_snapshot(info, FieldCatalog())
    assert before.schema.names[-2:] == ["loyalty_points", "vip"]
    assert before.column("loyalty_points").type == pa.string()

    declared = FieldCatalog.with_custom({"vip": "boolean", "loyalty_points": "integer"}, {})
    after = read_snapshot(info, declared)
    assert after.schema == declared.subscriber_schema()
    assert after.column("loyalty_points").to_pylist() == [120, None]
    assert after.column("vip").to_pylist() == [True, None]


def test_fields_missing_from_a_snapshot_are_typed_nulls(paths):
    (paths.landing_subscribers / "subs_20240101T000000Z.csv").write_text(
        "subscriber_id,email,status\ns1,a@example.com,active\n")
    ingest_landing(paths, FieldCatalog())
    catalog = FieldCatalog.with_custom({"birthday": "date", "scores": "list"}, {})
    table = read_snapshot(list_snapshots(paths)[0], catalog)
    assert table.schema == catalog.subscriber_schema()
    assert table.column("birthday").null_count == 1 and table.column("scores").type == pa.list_(pa.string())


def test_a_missing_lake_file_is_a_clear_error(paths):
    (paths.landing_subscribers / "subs_20240101T000000Z.csv").write_text(
        "subscriber_id,email,status\ns1,a@example.com,active\n")
    ingest_landing(paths, FieldCatalog())
    [info] = list_snapshots(paths)
    info.file.unlink()
    with pytest.raises(UserError, match="missing"):
        read_snapshot(info, FieldCatalog())


def test_snapshots_are_stored_in_subscriber_id_byte_order(paths):
    """Runs read snapshots in subscriber_id order; ingest sorts once (byte order, as
    Arrow compares), whatever the order of the export, so no run has to."""
    ids = ["sub_9", "sub_10", "Zed", "émile", "a", "sub_100", "_x", "A"]
    body = "".join(f"{i},{i}@example.com,active\n" for i in ids)
    (paths.landing_subscribers / "subs_20240101T000000Z.csv").write_text("subscriber_id,email,status\n" + body)
    ingest_landing(paths, FieldCatalog())
    stored = pq.read_table(list_snapshots(paths)[0].file).column("subscriber_id").to_pylist()
    assert stored == sorted(ids, key=lambda s: s.encode("utf-8"))
    assert stored != ids
