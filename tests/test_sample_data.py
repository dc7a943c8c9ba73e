"""The sample-data generator: determinism, the landing-file format of the
contract, rough realism, and members for every example segment."""

from __future__ import annotations

import csv
import gzip
import importlib.util
import json
import os
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pipelines.sample_data.generate as gen
from pipelines.core.settings import Paths
from pipelines.sample_data import (
    EVENT_SCHEMA,
    FORMATS,
    SUBSCRIBER_SCHEMA,
    generate_events,
    generate_subscribers,
    landing_file_paths,
    write_landing,
)
from pipelines.sample_data.generate import numbered
from pipelines.sample_data.landing import iso_utc
from pipelines.segments.fields import STATUSES

AS_OF = datetime(2026, 3, 15, 9, 30, 0, tzinfo=UTC)
AS_OF_SQL = f"timestamp '{AS_OF.replace(tzinfo=None).isoformat()}'"  # timestamps mean UTC
N = 10_000
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ROOT = Path(__file__).resolve().parents[1]


def paths(root: Path) -> Paths:
    return Paths(defs=ROOT / "segment_defs", data=root)


@pytest.fixture(scope="module")
def tables() -> tuple[pa.Table, pa.Table]:
    subscribers = generate_subscribers(N, as_of=AS_OF)
    return subscribers, generate_events(subscribers, as_of=AS_OF)


@pytest.fixture(scope="module")
def db(tables) -> duckdb.DuckDBPyConnection:
    subscribers, events = tables
    con = duckdb.connect()
    con.register("subscribers", subscribers)
    con.register("all_events", events)
    # The engine's rule: only events with occurred_at <= as_of count.
    con.execute(f"create view events as select * from all_events where occurred_at <= {AS_OF_SQL}")
    con.execute("create macro lower_tags(t) as list_transform(t, lambda x: lower(x))")
    return con


def scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int | float:
    return con.execute(sql.replace("$as_of", AS_OF_SQL)).fetchone()[0]


# -- determinism ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_arguments_give_the_same_bytes(tmp_path: Path, fmt: str) -> None:
    first = write_landing(paths(tmp_path / "a"), as_of=AS_OF, n_subscribers=1500, fmt=fmt)
    stamps = [p.stat().st_mtime_ns for p in first]
    os.utime(first[0], ns=(1, 1))  # an older, identical file stays as it is
    again = write_landing(paths(tmp_path / "a"), as_of=AS_OF, n_subscribers=1500, fmt=fmt)  # rewrite in place
    assert [p.stat().st_mtime_ns for p in again] == [1, stamps[1]]
    other = write_landing(paths(tmp_path / "b"), as_of=AS_OF, n_subscribers=1500, fmt=fmt)
    assert first == again
    for a, b in zip(first, other, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    reseeded = write_landing(paths(tmp_path / "c"), as_of=AS_OF, n_subscribers=1500, fmt=fmt, seed=8)
    assert reseeded[0].read_bytes() != first[0].read_bytes()


def test_streamed_files_match_the_in_memory_tables_across_blocks(tmp_path: Path, monkeypatch) -> None:
    # Several blocks, the last one partial, on worker threads or not: same rows.
    monkeypatch.setattr(gen, "BLOCK_ROWS", 700)
    subscribers = generate_subscribers(2000, as_of=AS_OF)
    events = generate_events(subscribers, as_of=AS_OF)
    written = write_landing(paths(tmp_path), as_of=AS_OF, n_subscribers=2000, fmt="parquet")
    assert pq.read_table(written[0]).equals(subscribers)
    assert pq.read_table(written[1]).equals(events)
    monkeypatch.setattr(gen, "THREADS", 1)
    assert generate_subscribers(2000, as_of=AS_OF).equals(subscribers)
    assert generate_events(subscribers, as_of=AS_OF).equals(events)


def test_naive_as_of_means_utc() -> None:
    naive = generate_subscribers(500, as_of=AS_OF.replace(tzinfo=None))
    assert naive.equals(generate_subscribers(500, as_of=AS_OF))
    in_new_york = AS_OF.astimezone(timezone(timedelta(hours=-5)))
    assert generate_subscribers(500, as_of=in_new_york).equals(naive)


# -- landing format ------------------------------------------------------------


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def test_file_names_and_layout(tmp_path: Path) -> None:
    as_of = AS_OF + timedelta(microseconds=654321)
    written = write_landing(paths(tmp_path), as_of=as_of, n_subscribers=100)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "landing/subscribers/subscribers_20260315T093000Z.csv",
        "landing/events/events_20260315T093000Z.csv",
    ]
    assert written == list(landing_file_paths(paths(tmp_path), as_of=as_of, fmt="csv"))
    # Nothing else: no partial files left behind.
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == sorted(
        p.relative_to(tmp_path).as_posix() for p in written)


def test_subscriber_csv_format(tmp_path: Path) -> None:
    subscribers_csv, _ = write_landing(paths(tmp_path), as_of=AS_OF, n_subscribers=3000)
    header, rows = read_csv(subscribers_csv)
    assert header == SUBSCRIBER_SCHEMA.names
    assert header[:3] == ["subscriber_id", "email", "status"]
    assert len(rows) == 3000
    assert rows[0]["subscriber_id"] == "sub_0000001"
    assert len({r["subscriber_id"] for r in rows}) == 3000
    assert all(r["status"] in STATUSES for r in rows)
    assert all(r["email"].count("@") == 1 for r in rows)
    assert all(ISO_Z.match(r["created_at"]) for r in rows)
    assert all(r["birthday"] == "" or DATE.match(r["birthday"]) for r in rows)
    assert {r["vip"] for r in rows} == {"true", "false", ""}
    assert all(r["age"] == "" or 18 <= int(r["age"]) <= 80 for r in rows)
    postal = [r["postal_code"] for r in rows if r["postal_code"]]
    assert all(re.fullmatch(r"\d{5}", p) for p in postal)
    assert any(p.startswith("0") for p in postal), "leading zeros must survive"
    tags = [r["tags"].split("|") for r in rows if r["tags"]]
    assert any(len(t) > 1 for t in tags)
    assert all(tag and tag == tag.strip() for t in tags for tag in t)
    assert any(r["tags"] == "" for r in rows), "some subscribers have no tags"
    assert any(r["age"] == "" for r in rows) and any(r["city"] == "" for r in rows)
    # Missing values are empty cells, never a quoted empty string.
    assert ',"",' not in subscribers_csv.read_text(encoding="utf-8")


def test_event_csv_format_and_quoting(tmp_path: Path) -> None:
    _, events_csv = write_landing(paths(tmp_path), as_of=AS_OF, n_subscribers=3000)
    header, rows = read_csv(events_csv)
    assert header == EVENT_SCHEMA.names
    assert header[:4] == ["event_id", "subscriber_id", "event", "occurred_at"]
    assert len({r["event_id"] for r in rows}) == len(rows)
    assert all(ISO_Z.match(r["occurred_at"]) for r in rows)
    products = {r["product"] for r in rows}
    # Values with a comma and a quote round-trip through RFC 4180 quoting.
    assert "Coffee Beans, 1 kg" in products and 'Tote Bag "Classic"' in products
    assert all(float(r["amount"]) > 0 for r in rows if r["event"] == "purchase")
    assert all(r["amount"] == "" for r in rows if r["event"] != "purchase")


def test_gzip_jsonl_and_parquet_carry_the_same_rows(tmp_path: Path) -> None:
    csv_paths = write_landing(paths(tmp_path), as_of=AS_OF, n_subscribers=500, fmt="csv")
    gz_paths = write_landing(paths(tmp_path), as_of=AS_OF, n_subscribers=500, fmt="csv.gz")
    for plain, packed in zip(csv_paths, gz_paths, strict=True):
        assert gzip.decompress(packed.read_bytes()) == plain.read_bytes()

    jsonl_paths = write_landing(paths(tmp_path), as_of=AS_OF, n_subscribers=500, fmt="jsonl")
    records = [json.loads(line) for line in jsonl_paths[0].read_text(encoding="utf-8").splitlines()]
    _, csv_rows = read_csv(csv_paths[0])
    assert len(records) == len(csv_rows) == 500
    for record, row in zip(records, csv_rows, strict=True):
        assert list(record) == SUBSCRIBER_SCHEMA.names
        assert isinstance(record["tags"], list) and "|".join(record["tags"]) == row["tags"]
        assert record["created_at"] == row["created_at"]
        assert record["postal_code"] == (row["postal_code"] or None)
        assert record["vip"] in (True, False, None)

    parquet_paths = write_landing(paths(tmp_path), as_of=AS_OF, n_subscribers=500, fmt="parquet")
    assert pq.read_schema(parquet_paths[0]).remove_metadata() == SUBSCRIBER_SCHEMA
    assert pq.read_schema(parquet_paths[1]).remove_metadata() == EVENT_SCHEMA
    assert pq.read_table(parquet_paths[1]).num_rows == len(read_csv(csv_paths[1])[1])


def test_no_subscribers_still_writes_headers(tmp_path: Path) -> None:
    subscribers_csv, events_csv = write_landing(paths(tmp_path), as_of=AS_OF, n_subscribers=0)
    assert read_csv(subscribers_csv) == (SUBSCRIBER_SCHEMA.names, [])
    assert read_csv(events_csv) == (EVENT_SCHEMA.names, [])


def test_bad_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown format"):
        write_landing(paths(tmp_path), as_of=AS_OF, n_subscribers=10, fmt="xlsx")


def test_string_helpers() -> None:
    assert numbered("sub_", 9_999_998, 3, 7).to_pylist() == ["sub_9999998", "sub_9999999", "sub_10000000"]
    stamps = pa.chunked_array([pa.array([0, 951_827_696_654_321, None], pa.timestamp("us"))])
    assert iso_utc(stamps).to_pylist() == ["1970-01-01T00:00:00Z", "2000-02-29T12:34:56Z", None]


# -- realism -------------------------------------------------------------------


def test_subscriber_distributions(db) -> None:
    assert scalar(db, "select count(distinct subscriber_id) from subscribers") == N
    assert scalar(db, "select count(distinct email) from subscribers") == N
    assert 0.10 <= scalar(db, "select avg((state = 'NY')::int) from subscribers") <= 0.15
    assert 0.85 <= scalar(db, "select avg((status = 'active')::int) from subscribers") <= 0.91
    assert scalar(db, "select count(distinct status) from subscribers") == 4
    assert scalar(db, "select count(distinct city) from subscribers") >= 40
    assert scalar(db, "select count(*) from subscribers where country is not null and country <> 'US'") == 0
    assert scalar(db, "select min(created_at) from subscribers") >= AS_OF.replace(tzinfo=None) - timedelta(days=1096)
    assert scalar(db, "select max(created_at) from subscribers") <= AS_OF.replace(tzinfo=None)
    recent = scalar(db, "select count(*) from subscribers where created_at >= $as_of - interval 30 day")
    assert 0.02 * N <= recent <= 0.10 * N
    for column in ("first_name", "age", "city", "signup_form", "loyalty_points", "vip", "birthday"):
        share = scalar(db, f"select avg(({column} is null)::int) from subscribers")
        assert 0 < share < 0.35, column


def test_event_distributions(db) -> None:
    total = scalar(db, "select count(*) from all_events")
    assert 1.8 * N <= total <= 2.2 * N
    assert scalar(db, "select count(distinct event_id) from all_events") == total
    late = scalar(db, "select count(*) from all_events where occurred_at > $as_of")
    assert 0 < late < 0.01 * total
    assert scalar(db, "select max(occurred_at) from all_events") <= AS_OF.replace(tzinfo=None) + timedelta(days=3)
    assert scalar(db, "select min(occurred_at) from all_events") >= AS_OF.replace(tzinfo=None) - timedelta(days=365)
    assert scalar(db, """select count(*) from all_events e join subscribers s using (subscriber_id)
                         where e.occurred_at < s.created_at""") == 0
    assert scalar(db, "select count(distinct event) from all_events") == 5
    assert 25 <= scalar(db, "select median(amount) from all_events where event = 'purchase'") <= 60
    assert scalar(db, "select count(*) from all_events where (amount is not null) <> (event = 'purchase')") == 0
    assert scalar(db, "select count(*) from all_events where coupon is not null and event <> 'purchase'") == 0
    assert scalar(db, "select count(*) from all_events where coupon is not null") > 0
    assert scalar(db, """select count(*) from all_events
                         where event in ('email_open', 'email_click') and campaign is null""") == 0


# -- every example segment has members -------------------------------------------

ACTIVE_USERS = """select distinct subscriber_id from events
                  where event = 'purchase' and occurred_at >= $as_of - interval 30 day"""
WEBINAR = "list_has_any(lower_tags(tags), ['webinar-attendee', 'webinar-2026'])"


def test_example_segments_have_members(db) -> None:
    def members(where: str) -> int:
        return scalar(db, f"select count(*) from subscribers s where {where}")

    counts = {
        "subscribers_in_new_york": members("lower(state) = 'ny'"),
        "webinar_attendees": members(WEBINAR),
        "active_users": scalar(db, f"select count(*) from ({ACTIVE_USERS})"),
        "engaged_subscribers": scalar(db, """select count(distinct subscriber_id) from events
            where event in ('email_open', 'email_click') and occurred_at >= $as_of - interval 90 day"""),
        "new_customers": members("""created_at >= $as_of - interval 30 day and created_at <= $as_of
            and (select count(*) from events e
                 where e.subscriber_id = s.subscriber_id and e.event = 'purchase') = 1
            and (lower(signup_form) = 'checkout' or list_has_any(lower_tags(tags), ['new-customer']))"""),
        "ny_webinar_not_customers": members(
            f"lower(state) = 'ny' and {WEBINAR} and subscriber_id not in ({ACTIVE_USERS})"),
        # include: [subscribers_in_new_york, webinar_attendees] (any), exclude: [active_users], active only
        "audience nyc_meetup_invite": members(
            f"(lower(state) = 'ny' or {WEBINAR}) and subscriber_id not in ({ACTIVE_USERS}) and status = 'active'"),
        "signup_form NYC meetup form": members("signup_form = 'NYC meetup form'"),
    }
    assert all(count >= 50 for count in counts.values()), counts
    assert counts["subscribers_in_new_york"] < N and counts["active_users"] < N


def test_tags_come_in_mixed_case(db) -> None:
    assert scalar(db, "select count(*) from subscribers where list_contains(tags, 'Webinar-Attendee')") > 0
    assert scalar(db, "select count(*) from subscribers where list_contains(tags, 'webinar-attendee')") > 0
    assert scalar(db, "select count(*) from subscribers where len(tags) = 0") > 0


# -- bench/generate.py -----------------------------------------------------------


def load_bench_script():
    spec = importlib.util.spec_from_file_location("bench_generate", ROOT / "bench" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_script(tmp_path: Path, capsys) -> None:
    bench = load_bench_script()
    assert [bench.parse_size(s) for s in ("1M", "10M", "100M", "250k", "10000", "10_000", "1.5M")] == [
        1_000_000, 10_000_000, 100_000_000, 250_000, 10_000, 10_000, 1_500_000]
    assert bench.main(["--size", "1k", "--out", str(tmp_path), "--format", "parquet",
                       "--as-of", "2026-03-15T09:30:00Z"]) == 0
    out = capsys.readouterr().out
    assert "1,000 subscribers" in out and " s\n" in out
    expected = landing_file_paths(paths(tmp_path), as_of=AS_OF, fmt="parquet")
    assert pq.read_table(expected[0]).equals(generate_subscribers(1000, as_of=AS_OF))
    assert pq.read_table(expected[1]).num_rows > 0


def test_csv_reads_back_with_a_dialect_sniffing_reader(tmp_path: Path) -> None:
    # Any RFC 4180 reader gets the same cells as the csv module: check DuckDB's.
    subscribers_csv, _ = write_landing(paths(tmp_path), as_of=AS_OF, n_subscribers=800)
    con = duckdb.connect()
    got = con.execute("select postal_code, tags from read_csv(?, all_varchar = true) order by subscriber_id",
                      [str(subscribers_csv)]).fetchall()
    _, rows = read_csv(subscribers_csv)
    assert got == [(r["postal_code"] or None, r["tags"] or None) for r in rows]


def test_a_different_existing_file_is_replaced(tmp_path: Path) -> None:
    small = write_landing(paths(tmp_path), as_of=AS_OF, n_subscribers=100)
    large = write_landing(paths(tmp_path), as_of=AS_OF, n_subscribers=200)
    assert small == large
    assert len(read_csv(large[0])[1]) == 200
