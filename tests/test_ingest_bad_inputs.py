"""The bad-input corpus (tests/bad_inputs/): every file's outcome, asserted end to end.

Each case runs against a real data folder: the file is copied into landing,
ingested, and then the lake, the quarantine, the rejected folder, the archive
and the landing file itself are checked. A second ingest must change nothing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

from pipelines.core.settings import Paths
from pipelines.lake.ingest import ingest_landing
from pipelines.lake.ledger import Ledger
from pipelines.lake.snapshots import list_snapshots, quarantine_table, read_events, read_snapshot
from pipelines.segments.fields import FieldCatalog

CORPUS = Path(__file__).resolve().parent / "bad_inputs"
_spec = importlib.util.spec_from_file_location("bad_input_cases", CORPUS / "cases.py")
cases = sys.modules.setdefault("bad_input_cases", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(cases)

CATALOG = FieldCatalog.with_custom({"loyalty_points": "integer", "vip": "boolean", "birthday": "date"},
                                   {"coupon": "string"})
BASELINE = {
    "subscribers": ("baseline_20240101T000000Z.csv", "subscriber_id,email,status\nb1,b1@example.com,active\n"),
    "events": ("baseline_20240101T000000Z.csv",
               "event_id,subscriber_id,event,occurred_at\nb100,b1,open,2024-01-01T00:00:00Z\n"),
}


def _landing(paths: Paths, kind: str) -> Path:
    folder = paths.landing_subscribers if kind == "subscribers" else paths.landing_events
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _lake_data_files(paths: Paths) -> dict[str, str]:
    """Every data file of the lake (not the ledger) with its content hash."""
    if not paths.lake.exists():
        return {}
    return {
        str(p.relative_to(paths.lake)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(paths.lake.rglob("*.parquet"))
    }


def _key(kind: str) -> str:
    return "subscriber_id" if kind == "subscribers" else "event_id"


def _lake_rows(paths: Paths, kind: str, name: str) -> list[dict]:
    if kind == "events":
        return read_events(paths, CATALOG).to_pylist()
    [info] = [s for s in list_snapshots(paths) if s.source == name]
    table = read_snapshot(info, CATALOG)
    assert table.schema.names[: len(CATALOG.subscriber)] == list(CATALOG.subscriber)
    assert table.schema.field("age").type == CATALOG.subscriber_schema().field("age").type
    return table.to_pylist()


def test_the_corpus_is_large_and_every_file_has_a_case():
    files = {str(p.relative_to(CORPUS)) for kind in ("subscribers", "events") for p in (CORPUS / kind).iterdir()}
    assert files == {c.file for c in cases.CASES}
    bad = [c for c in cases.CASES if c.outcome == "rejected" or c.quarantine]
    assert len(bad) >= 25


@pytest.mark.parametrize("case", cases.CASES, ids=lambda c: c.id)
def test_bad_input(case, tmp_path):
    paths = Paths(defs=tmp_path / "defs", data=tmp_path / "data")
    # A non-empty lake first, so "unchanged" is a real check.
    name, content = BASELINE[case.kind]
    (_landing(paths, case.kind) / name).write_text(content)
    for earlier in case.before:
        shutil.copy(CORPUS / earlier, _landing(paths, case.kind))
    first = ingest_landing(paths, CATALOG)
    assert first.rejected == [] and first.quarantined_rows == 0
    lake_before = _lake_data_files(paths)
    events_before = read_events(paths, CATALOG).num_rows

    source = CORPUS / case.file
    landed = _landing(paths, case.kind) / source.name
    shutil.copy(source, landed)
    original = landed.read_bytes()

    report = ingest_landing(paths, CATALOG)

    # Landing files are never modified; every one is archived, byte for byte.
    assert landed.read_bytes() == original
    archived = list((paths.archive / case.kind).rglob(source.name))
    assert [a.read_bytes() for a in archived] == [original]

    if case.outcome == "rejected":
        assert report.ingested == []
        assert [r.file for r in report.rejected] == [source.name]
        assert case.reason in report.rejected[0].reason
        assert "\n" not in report.rejected[0].reason
        assert _lake_data_files(paths) == lake_before
        assert quarantine_table(paths).num_rows == 0
        assert [(e.file, e.reason) for e in Ledger(paths).entries(status="rejected")] == \
            [(r.file, r.reason) for r in report.rejected]
        [kept] = list((paths.rejected / case.kind).rglob(source.name))
        assert kept.read_bytes() == original
        assert case.reason in kept.with_name(source.name + ".reason.txt").read_text()
        assert all(s.source != source.name for s in list_snapshots(paths))
    else:
        assert report.rejected == []
        assert report.ingested == [source.name]
        quarantined = quarantine_table(paths).to_pylist()
        assert report.quarantined_rows == len(quarantined) == len(case.quarantine)
        for got, want in zip(quarantined, case.quarantine, strict=True):
            assert got["file"] == source.name
            assert got["row_number"] == want.row, got
            assert want.reason in got["reason"], got
            if want.raw is not None:
                assert got["raw"] == want.raw
        rows = _lake_rows(paths, case.kind, source.name)
        by_key = {row[_key(case.kind)]: row for row in rows}
        if case.loaded is not None:
            loaded = len(rows) - events_before if case.kind == "events" else len(rows)
            assert loaded == case.loaded
        for key, expected in case.rows.items():
            assert key in by_key, f"{key} missing from the lake"
            for column, value in expected.items():
                assert by_key[key][column] == value, (key, column)
        for key in case.absent:
            assert key not in by_key
    if case.warning:
        assert any(case.warning in w for w in report.warnings), report.warnings

    # Idempotent: the same inputs again change nothing and report nothing new.
    lake_after = _lake_data_files(paths)
    again = ingest_landing(paths, CATALOG)
    assert again.ingested == [] and again.rejected == [] and again.quarantined_rows == 0
    assert source.name in again.skipped
    assert _lake_data_files(paths) == lake_after
