"""Nothing lost, nothing twice: the ledger, archive, crash recovery and event de-duplication."""

from __future__ import annotations

import os
import shutil
from datetime import datetime

import pytest

from pipelines.core.settings import Paths
from pipelines.lake import ingest as ingest_module
from pipelines.lake.ingest import Rejection, ingest_landing
from pipelines.lake.ledger import Ledger
from pipelines.lake.snapshots import list_snapshots, quarantine_table, read_events, read_snapshot
from pipelines.segments.fields import FieldCatalog

CATALOG = FieldCatalog()
SNAPSHOT = "subscriber_id,email,status\ns1,a@example.com,active\ns2,b@example.com,active\n"
EVENTS_HEAD = "event_id,subscriber_id,event,occurred_at,amount\n"


@pytest.fixture
def paths(tmp_path) -> Paths:
    p = Paths(defs=tmp_path / "defs", data=tmp_path / "data")
    p.landing_subscribers.mkdir(parents=True)
    p.landing_events.mkdir(parents=True)
    return p


def _lake_parquet(paths: Paths) -> list[str]:
    return sorted(str(p.relative_to(paths.lake)) for p in paths.lake.rglob("*.parquet"))


def test_same_file_twice_is_a_no_op(paths):
    (paths.landing_subscribers / "subs_20240105T060000Z.csv").write_text(SNAPSHOT)
    first = ingest_landing(paths, CATALOG)
    assert first.ingested == ["subs_20240105T060000Z.csv"]
    files = _lake_parquet(paths)

    again = ingest_landing(paths, CATALOG)
    assert again.ingested == [] and again.skipped == ["subs_20240105T060000Z.csv"]
    assert _lake_parquet(paths) == files


def test_the_same_rows_exported_later_are_a_new_snapshot(paths):
    """Snapshot A, then B, then A's bytes again: the latest snapshot is the third,
    not B (it was once skipped as a known file, and runs then evaluated B)."""
    other = SNAPSHOT.replace("a@example.com", "a2@example.com")
    (paths.landing_subscribers / "subs_20240105T060000Z.csv").write_text(SNAPSHOT)
    (paths.landing_subscribers / "subs_20240106T060000Z.csv").write_text(other)
    (paths.landing_subscribers / "subs_20240107T060000Z.csv").write_text(SNAPSHOT)
    report = ingest_landing(paths, CATALOG)
    assert report.ingested == [f"subs_2024010{d}T060000Z.csv" for d in (5, 6, 7)] and report.skipped == []
    snapshots = list_snapshots(paths)
    assert [s.source for s in snapshots] == [f"subs_2024010{d}T060000Z.csv" for d in (5, 6, 7)]
    assert read_snapshot(snapshots[-1], CATALOG).equals(read_snapshot(snapshots[0], CATALOG))
    again = ingest_landing(paths, CATALOG)
    assert again.ingested == [] and len(again.skipped) == 3 and again.rejected == []


def test_a_renamed_copy_of_an_events_export_is_skipped(paths):
    (paths.landing_events / "ev_20240102T000000Z.csv").write_text(EVENTS_HEAD + "e1,s1,purchase,2024-01-01T10:00:00Z,10\n")
    assert ingest_landing(paths, CATALOG).ingested == ["ev_20240102T000000Z.csv"]
    files = _lake_parquet(paths)
    shutil.copy(paths.landing_events / "ev_20240102T000000Z.csv", paths.landing_events / "copy_20240103T000000Z.csv")
    renamed = ingest_landing(paths, CATALOG)
    assert renamed.ingested == [] and "copy_20240103T000000Z.csv" in renamed.skipped
    assert _lake_parquet(paths) == files
    # ...but the copy is a landing file too, so it is archived.
    assert list(paths.archive.rglob("copy_20240103T000000Z.csv"))


def test_two_snapshots_with_the_same_time_reject_the_second(paths):
    (paths.landing_subscribers / "a_20240105T060000Z.csv").write_text(SNAPSHOT)
    (paths.landing_subscribers / "b_20240105T060000Z.csv").write_text(SNAPSHOT + "s3,c@example.com,active\n")
    report = ingest_landing(paths, CATALOG)
    assert report.ingested == ["a_20240105T060000Z.csv"]
    assert [r.file for r in report.rejected] == ["b_20240105T060000Z.csv"]
    assert "same time (20240105T060000Z)" in report.rejected[0].reason
    assert "'a_20240105T060000Z.csv'" in report.rejected[0].reason
    assert [s.rows for s in list_snapshots(paths)] == [2]
    # The same bytes delivered again under a corrected time are ingested.
    shutil.copy(paths.landing_subscribers / "b_20240105T060000Z.csv",
                paths.landing_subscribers / "b_20240105T070000Z.csv")
    fixed = ingest_landing(paths, CATALOG)
    assert fixed.ingested == ["b_20240105T070000Z.csv"] and fixed.rejected == []
    assert [s.rows for s in list_snapshots(paths)] == [2, 3]


def test_badly_named_file_is_rejected_once_and_accepted_under_a_good_name(paths):
    (paths.landing_subscribers / "subscribers.csv").write_text(SNAPSHOT)
    report = ingest_landing(paths, CATALOG)
    assert report.rejected == [Rejection("subscribers.csv", report.rejected[0].reason)]
    assert "no time" in str(report.rejected[0]) and str(report.rejected[0]).startswith("subscribers.csv: ")
    assert ingest_landing(paths, CATALOG).rejected == []  # reported once
    assert [(e.file, e.reason) for e in Ledger(paths).entries(status="rejected")] == \
        [(r.file, r.reason) for r in report.rejected]

    shutil.copy(paths.landing_subscribers / "subscribers.csv", paths.landing_subscribers / "s_20240105T060000Z.csv")
    assert ingest_landing(paths, CATALOG).ingested == ["s_20240105T060000Z.csv"]
    assert (paths.landing_subscribers / "subscribers.csv").read_text() == SNAPSHOT  # never deleted


def test_content_rejection_is_remembered_under_any_name(paths):
    (paths.landing_subscribers / "a_20240105T060000Z.csv").write_bytes(b"subscriber_id,email\n")
    assert len(ingest_landing(paths, CATALOG).rejected) == 1
    shutil.copy(paths.landing_subscribers / "a_20240105T060000Z.csv",
                paths.landing_subscribers / "b_20240106T060000Z.csv")
    report = ingest_landing(paths, CATALOG)
    assert report.rejected == [] and "b_20240106T060000Z.csv" in report.skipped


def test_events_are_deduplicated_across_files_first_seen_wins(paths):
    (paths.landing_events / "ev_20240102T000000Z.csv").write_text(
        EVENTS_HEAD + "e1,s1,purchase,2024-01-01T10:00:00Z,10\ne2,s1,purchase,2024-01-01T11:00:00Z,20\n")
    # Named later in the alphabet but earlier in time: processed first.
    (paths.landing_events / "a_20240103T000000Z.csv").write_text(
        EVENTS_HEAD + "e2,s1,purchase,2024-01-01T11:00:00Z,999\ne3,s2,open,2024-01-02T09:00:00Z,\n")
    report = ingest_landing(paths, CATALOG)
    assert report.ingested == ["ev_20240102T000000Z.csv", "a_20240103T000000Z.csv"]
    assert "a_20240103T000000Z.csv: 1 event(s) ignored: their event_id was already seen" in report.warnings
    events = {e["event_id"]: e["amount"] for e in read_events(paths, CATALOG).to_pylist()}
    assert events == {"e1": 10.0, "e2": 20.0, "e3": None}
    # A later export repeating everything adds nothing.
    (paths.landing_events / "z_20240104T000000Z.csv").write_text(
        EVENTS_HEAD + "e1,s1,purchase,2024-01-01T10:00:00Z,10\ne3,s2,open,2024-01-02T09:00:00Z,\n")
    ingest_landing(paths, CATALOG)
    assert read_events(paths, CATALOG).num_rows == 3


class Crash(Exception):
    pass


@pytest.mark.parametrize("kind", ["subscribers", "events"])
def test_crash_between_lake_file_and_ledger_does_not_duplicate(paths, monkeypatch, kind):
    (paths.landing_events / "ev_20240101T000000Z.csv").write_text(
        EVENTS_HEAD + "e1,s1,purchase,2024-01-01T10:00:00Z,10\n")
    ingest_landing(paths, CATALOG)
    if kind == "subscribers":
        (paths.landing_subscribers / "subs_20240105T060000Z.csv").write_text(SNAPSHOT + "s1,dup@example.com,active\n")
    else:
        (paths.landing_events / "ev_20240102T000000Z.csv").write_text(
            EVENTS_HEAD + "e1,s1,purchase,2024-01-01T10:00:00Z,10\ne2,s1,open,2024-01-01T11:00:00Z,\nbad,s1,x,never,\n")

    real_record = Ledger.record

    def crash_before_commit(self, entry):
        if entry.file != "ev_20240101T000000Z.csv":
            raise Crash("power cut")
        return real_record(self, entry)

    monkeypatch.setattr(Ledger, "record", crash_before_commit)
    with pytest.raises(Crash):
        ingest_landing(paths, CATALOG)
    written = _lake_parquet(paths)
    # The half-done ingest is invisible: not in the listings, not in reads.
    assert list_snapshots(paths) == []
    assert read_events(paths, CATALOG).column("event_id").to_pylist() == ["e1"]
    assert quarantine_table(paths).num_rows == 0
    assert not (paths.lake / "_tmp").exists()

    monkeypatch.setattr(Ledger, "record", real_record)
    report = ingest_landing(paths, CATALOG)
    assert len(report.ingested) == 1
    assert _lake_parquet(paths) == written  # the same files, rewritten in place
    if kind == "subscribers":
        [info] = list_snapshots(paths)
        assert info.rows == 2
        assert sorted(read_snapshot(info, CATALOG).column("email").to_pylist()) == ["b@example.com",
                                                                                     "dup@example.com"]
        assert quarantine_table(paths).column("row_number").to_pylist() == [1]
    else:
        assert sorted(read_events(paths, CATALOG).column("event_id").to_pylist()) == ["e1", "e2"]
        assert quarantine_table(paths).column("row_number").to_pylist() == [3]


def test_unlisted_and_temporary_lake_files_are_never_read(paths):
    (paths.landing_subscribers / "subs_20240105T060000Z.csv").write_text(SNAPSHOT)
    (paths.landing_events / "ev_20240101T000000Z.csv").write_text(EVENTS_HEAD + "e1,s1,open,2024-01-01,\n")
    ingest_landing(paths, CATALOG)
    [info] = list_snapshots(paths)
    # A half-written temporary file and a stray part next to the real ones.
    (info.file.parent / f".{info.file.name}.abc.tmp").write_bytes(b"PAR1 half")
    [part] = list((paths.lake / "events").rglob("*.parquet"))
    shutil.copy(part, part.with_name("events_29990101T000000Z_feedfacefeedface.parquet"))
    assert list_snapshots(paths) == [info]
    assert read_events(paths, CATALOG).num_rows == 1
    # The next ingest sweeps temporary files a killed run left behind.
    ingest_landing(paths, CATALOG)
    assert not list(paths.lake.rglob("*.tmp"))


def test_changed_landing_file_is_hashed_again(paths):
    landed = paths.landing_events / "ev_20240101T000000Z.csv"
    landed.write_text(EVENTS_HEAD + "e1,s1,open,2024-01-01,\n")
    ingest_landing(paths, CATALOG)
    landed.write_text(EVENTS_HEAD + "e1,s1,open,2024-01-01,\ne2,s1,open,2024-01-02,\n")
    stat = landed.stat()
    os.utime(landed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000))
    report = ingest_landing(paths, CATALOG)
    assert report.ingested == ["ev_20240101T000000Z.csv"]
    assert sorted(read_events(paths, CATALOG).column("event_id").to_pylist()) == ["e1", "e2"]
    # Both versions are archived.
    assert len(list(paths.archive.rglob("ev_20240101T000000Z.csv"))) == 2


def test_hidden_files_are_ignored_and_a_corrupt_index_is_rebuilt(paths):
    (paths.landing_subscribers / ".subs_20240105T060000Z.csv.uploading").write_text("partial")
    (paths.landing_subscribers / "subs_20240105T060000Z.csv").write_text(SNAPSHOT)
    ingest_landing(paths, CATALOG)
    (paths.lake / "_landing_index.json").write_text("{not json")
    report = ingest_landing(paths, CATALOG)
    assert report.skipped == ["subs_20240105T060000Z.csv"] and report.rejected == []


def test_snapshots_are_processed_and_listed_by_time(paths):
    for name in ["b_20240103T000000Z.csv", "a_20240104T000000Z.csv", "c_20240101T000000Z.csv"]:
        # Different content per file, or the ledger would skip the copies.
        (paths.landing_subscribers / name).write_text(SNAPSHOT + f"x{name[0]},{name[0]}@example.com,active\n")
    report = ingest_landing(paths, CATALOG)
    assert report.ingested == ["c_20240101T000000Z.csv", "b_20240103T000000Z.csv", "a_20240104T000000Z.csv"]
    assert [s.snapshot_at for s in list_snapshots(paths)] == [
        datetime(2024, 1, 1), datetime(2024, 1, 3), datetime(2024, 1, 4)]


def test_ingest_is_silent_on_an_empty_data_folder(tmp_path):
    paths = Paths(defs=tmp_path / "defs", data=tmp_path / "nothing")
    report = ingest_landing(paths, CATALOG)
    assert report == ingest_module.IngestReport()
    assert list_snapshots(paths) == [] and Ledger(paths).entries() == []
    assert quarantine_table(paths).column_names == ["file", "row_number", "reason", "raw"]
    assert read_events(paths, CATALOG).schema == CATALOG.event_schema()
