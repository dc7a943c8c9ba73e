"""Happy path: the same subscribers and events as CSV, CSV.GZ, JSONL and Parquet
land as the same typed lake rows."""

from __future__ import annotations

import gzip
import json
from datetime import date, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.core.settings import Paths
from pipelines.lake.ingest import ingest_landing
from pipelines.lake.snapshots import list_snapshots, read_events, read_snapshot
from pipelines.segments.fields import FieldCatalog

CATALOG = FieldCatalog.with_custom({"loyalty_points": "integer", "vip": "boolean", "birthday": "date"},
                                   {"coupon": "string"})

SUBSCRIBERS_CSV = (
    "subscriber_id,email,status,first_name,last_name,signup_form,city,state,country,postal_code,age,"
    "created_at,tags,loyalty_points,vip,birthday\n"
    's1,ann@example.com,Active,Ann,"Smith, Jr.",Checkout,New York,NY,US,02134,34,'
    "2024-01-01T10:00:00+02:00, webinar-attendee | VIP ||,120,TRUE,1990-05-01\n"
    "s2,bob@example.com,unsubscribed,Bob,,,Boston,MA,US,,,2024-01-02 08:30:00,,,false,\n"
    's3,cy@example.com,bounced," Cy ",Lee,Footer,,,,00501,61,2023-12-31T23:59:59.5Z,solo,0,,1963-02-28\n'
)

EXPECTED_SUBSCRIBERS = [
    {"subscriber_id": "s1", "email": "ann@example.com", "status": "active", "first_name": "Ann",
     "last_name": "Smith, Jr.", "signup_form": "Checkout", "city": "New York", "state": "NY", "country": "US",
     "postal_code": "02134", "age": 34, "created_at": datetime(2024, 1, 1, 8, 0),
     "tags": ["webinar-attendee", "VIP"], "loyalty_points": 120, "vip": True, "birthday": date(1990, 5, 1)},
    {"subscriber_id": "s2", "email": "bob@example.com", "status": "unsubscribed", "first_name": "Bob",
     "last_name": None, "signup_form": None, "city": "Boston", "state": "MA", "country": "US",
     "postal_code": None, "age": None, "created_at": datetime(2024, 1, 2, 8, 30), "tags": None,
     "loyalty_points": None, "vip": False, "birthday": None},
    {"subscriber_id": "s3", "email": "cy@example.com", "status": "bounced", "first_name": "Cy",
     "last_name": "Lee", "signup_form": "Footer", "city": None, "state": None, "country": None,
     "postal_code": "00501", "age": 61, "created_at": datetime(2023, 12, 31, 23, 59, 59, 500_000),
     "tags": ["solo"], "loyalty_points": 0, "vip": None, "birthday": date(1963, 2, 28)},
]

SUBSCRIBERS_JSONL = "\n".join(json.dumps(row) for row in [
    {"subscriber_id": "s1", "email": "ann@example.com", "status": "Active", "first_name": "Ann",
     "last_name": "Smith, Jr.", "signup_form": "Checkout", "city": "New York", "state": "NY", "country": "US",
     "postal_code": "02134", "age": 34, "created_at": "2024-01-01T10:00:00+02:00",
     "tags": [" webinar-attendee ", "VIP", ""], "loyalty_points": 120, "vip": True, "birthday": "1990-05-01"},
    {"subscriber_id": "s2", "email": "bob@example.com", "status": "unsubscribed", "first_name": "Bob",
     "last_name": "", "city": "Boston", "state": "MA", "country": "US", "created_at": "2024-01-02 08:30:00",
     "vip": False, "loyalty_points": None},
    {"subscriber_id": "s3", "email": "cy@example.com", "status": "bounced", "first_name": " Cy ",
     "last_name": "Lee", "signup_form": "Footer", "postal_code": "00501", "age": 61,
     "created_at": "2023-12-31T23:59:59.5Z", "tags": "solo", "loyalty_points": 0, "birthday": "1963-02-28"},
]) + "\n"


def _subscribers_parquet() -> pa.Table:
    rows = [dict(row) for row in EXPECTED_SUBSCRIBERS]
    rows[0]["status"] = "ACTIVE"  # the row rules apply to Parquet too
    rows[2]["first_name"] = " Cy "
    schema = CATALOG.subscriber_schema()
    return pa.Table.from_pylist(rows, schema=schema)


EVENTS_CSV = (
    "event_id,subscriber_id,event,occurred_at,amount,product,campaign,coupon\n"
    "e1,s1,purchase,2024-01-03T12:00:00Z,49.5,mug,,SAVE10\n"
    "e2,s3,email_open,2024-01-04 09:00:00+01:00,,,jan-news,\n"
)
EXPECTED_EVENTS = [
    {"event_id": "e1", "subscriber_id": "s1", "event": "purchase", "product": "mug", "campaign": None,
     "amount": 49.5, "occurred_at": datetime(2024, 1, 3, 12, 0), "coupon": "SAVE10"},
    {"event_id": "e2", "subscriber_id": "s3", "event": "email_open", "product": None, "campaign": "jan-news",
     "amount": None, "occurred_at": datetime(2024, 1, 4, 8, 0), "coupon": None},
]


def _write(paths: Paths, kind: str, fmt: str, stamp: str, csv_text: str, jsonl_text: str,
           table: pa.Table) -> None:
    folder = paths.landing_subscribers if kind == "subscribers" else paths.landing_events
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{kind}_{stamp}.{fmt}"
    if fmt == "csv":
        target.write_text(csv_text)
    elif fmt == "csv.gz":
        target.write_bytes(gzip.compress(csv_text.encode()))
    elif fmt == "jsonl":
        target.write_text(jsonl_text)
    else:
        pq.write_table(table, target)


FORMATS = ["csv", "csv.gz", "jsonl", "parquet"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_subscriber_snapshot_lands_typed_in_every_format(fmt, tmp_path):
    paths = Paths(defs=tmp_path / "defs", data=tmp_path / "data")
    _write(paths, "subscribers", fmt, "20240105T060000Z", SUBSCRIBERS_CSV, SUBSCRIBERS_JSONL, _subscribers_parquet())
    report = ingest_landing(paths, CATALOG)
    assert report.rejected == [] and report.quarantined_rows == 0 and report.warnings == []
    [info] = list_snapshots(paths)
    assert info.snapshot_at == datetime(2024, 1, 5, 6, 0) and info.rows == 3
    table = read_snapshot(info, CATALOG)
    assert table.schema == CATALOG.subscriber_schema()
    assert sorted(table.to_pylist(), key=lambda r: r["subscriber_id"]) == EXPECTED_SUBSCRIBERS
    # The lake file itself is typed and zstd-compressed.
    metadata = pq.ParquetFile(info.file).metadata
    assert metadata.row_group(0).column(0).compression == "ZSTD"
    assert pq.read_schema(info.file).field("created_at").type == pa.timestamp("us")


@pytest.mark.parametrize("fmt", FORMATS)
def test_events_land_typed_in_every_format(fmt, tmp_path):
    paths = Paths(defs=tmp_path / "defs", data=tmp_path / "data")
    jsonl = "\n".join(json.dumps(r) for r in [
        {"event_id": "e1", "subscriber_id": "s1", "event": "purchase", "occurred_at": "2024-01-03T12:00:00Z",
         "amount": 49.5, "product": "mug", "coupon": "SAVE10"},
        {"event_id": "e2", "subscriber_id": "s3", "event": "email_open", "occurred_at": "2024-01-04 09:00:00+01:00",
         "campaign": "jan-news", "amount": None},
    ])
    table = pa.Table.from_pylist(EXPECTED_EVENTS, schema=CATALOG.event_schema())
    _write(paths, "events", fmt, "20240105T060000Z", EVENTS_CSV, jsonl, table)
    report = ingest_landing(paths, CATALOG)
    assert report.rejected == [] and report.quarantined_rows == 0
    events = read_events(paths, CATALOG)
    assert events.schema == CATALOG.event_schema()
    assert sorted(events.to_pylist(), key=lambda r: r["event_id"]) == EXPECTED_EVENTS
    assert read_events(paths, CATALOG, as_of=datetime(2024, 1, 3, 12, 0)).column("event_id").to_pylist() == ["e1"]


def test_all_formats_side_by_side_give_identical_snapshots(tmp_path):
    paths = Paths(defs=tmp_path / "defs", data=tmp_path / "data")
    for hour, fmt in enumerate(FORMATS):
        _write(paths, "subscribers", fmt, f"20240105T0{hour}0000Z", SUBSCRIBERS_CSV, SUBSCRIBERS_JSONL,
               _subscribers_parquet())
    report = ingest_landing(paths, CATALOG)
    assert len(report.ingested) == 4 and report.rejected == []
    snapshots = list_snapshots(paths)
    assert [s.source.split("_")[1].split(".", 1)[1] for s in snapshots] == FORMATS
    tables = [read_snapshot(s, CATALOG).sort_by("subscriber_id") for s in snapshots]
    assert all(t.equals(tables[0]) for t in tables[1:])
