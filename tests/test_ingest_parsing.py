"""The text rules, column by column, and the CSV reader's row numbering and block handling."""

from __future__ import annotations

import io
import random
from datetime import date, datetime

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.core.settings import Paths
from pipelines.lake import readers
from pipelines.lake.columns import TableSpec
from pipelines.lake.ingest import ingest_landing
from pipelines.lake.naming import BadLandingName, parse_landing_name
from pipelines.lake.problems import RecordTooLarge
from pipelines.lake.snapshots import list_snapshots, quarantine_table, read_snapshot
from pipelines.lake.textparse import (
    _TIMESTAMP,
    _only_matching,
    _timestamp_by_cast,
    _timestamp_by_parts,
    clean_text,
    parse_text,
)
from pipelines.segments.fields import FieldCatalog


def parsed(values, field_type):
    result = parse_text(pa.array(values, pa.string()), field_type)
    return result.values.to_pylist(), result.bad.tolist()


def test_strings_are_trimmed_and_empty_is_missing():
    assert clean_text(pa.array([" a ", "", "   ", None, "\u00a0b\t", "02134"])).to_pylist() == [
        "a", None, None, None, "b", "02134"]


def test_integers_are_plain_digits_in_range():
    assert parsed(["42", "+7", "-007", "42.0", "1e3", "9223372036854775807", "9223372036854775808", " ", "x"],
                  "integer") == (
        [42, 7, -7, None, None, 2**63 - 1, None, None, None],
        [False, False, False, True, True, False, True, False, True])


def test_numbers_are_finite_decimals():
    assert parsed(["1.5", "-.5", "1e3", "7", "1,5", "nan", "inf", "1e999"], "number") == (
        [1.5, -0.5, 1000.0, 7.0, None, None, None, None], [False] * 4 + [True] * 4)


def test_booleans_are_true_or_false_in_any_case():
    assert parsed(["true", "FALSE", "True", "1", "yes", ""], "boolean") == (
        [True, False, True, None, None, None], [False, False, False, True, True, False])


def test_dates_are_real_calendar_days():
    assert parsed(["2024-02-29", "2023-02-29", "2024-04-31", "2024-1-5", "0000-01-01", "9999-12-31"], "date") == (
        [date(2024, 2, 29), None, None, None, None, date(9999, 12, 31)], [False, True, True, True, True, False])


def test_timestamps_iso_8601_with_offsets_become_utc():
    values, bad = parsed([
        "2024-01-05T10:00:00Z", "2024-01-05 10:00:00", "2024-01-05T10:00", "2024-01-05",
        "2024-01-05T10:00:00+02:00", "2024-01-05T10:00:00-0530", "2024-01-05T10:00:00+01",
        "2024-01-05T10:00:00.123456789Z", "2024-01-05T10:00:00,5",
        "2024-01-05T24:00:00", "2024-02-30T00:00:00", "2024-01-05T10", "2024-01-05Z", "05/01/2024 10:00",
        "2024-01-05T10:00:00+24:00", "9999-12-31T23:00:00-05:00",
    ], "timestamp")
    assert values[:9] == [
        datetime(2024, 1, 5, 10), datetime(2024, 1, 5, 10), datetime(2024, 1, 5, 10), datetime(2024, 1, 5),
        datetime(2024, 1, 5, 8), datetime(2024, 1, 5, 15, 30), datetime(2024, 1, 5, 9),
        datetime(2024, 1, 5, 10, 0, 0, 123456), datetime(2024, 1, 5, 10, 0, 0, 500000)]
    assert values[9:] == [None] * 7 and bad == [False] * 9 + [True] * 7


def test_lists_split_on_pipes_trimmed_without_empty_items():
    assert parsed(["a| b ||c ", "|", "", " solo ", None], "list") == (
        [["a", "b", "c"], None, None, ["solo"], None], [False] * 5)


_digits = st.text("0123456789", min_size=1, max_size=3)
_timestamp_like = st.builds(
    lambda y, mo, d, sep, h, mi, s, frac, zone: f"{y}-{mo}-{d}{sep}{h}:{mi}{s}{frac}{zone}",
    st.sampled_from(["2024", "1999", "0001", "9999", "0000"]),
    st.sampled_from(["01", "02", "12", "13", "00"]),
    st.sampled_from(["01", "28", "29", "30", "31", "32"]),
    st.sampled_from(["T", " "]),
    st.sampled_from(["00", "09", "23", "24"]),
    st.sampled_from(["00", "59", "60"]),
    st.sampled_from(["", ":00", ":59", ":60"]),
    st.sampled_from(["", ".5", ",25", ".123456", ".1234567", ".123456789"]),
    st.sampled_from(["", "Z", "+02:00", "-0530", "+01", "-23:59", "+24:00", "+02:60"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_timestamp_like, min_size=1, max_size=8))
def test_fast_and_exact_timestamp_paths_agree(values):
    """The fast path (Arrow's cast) must accept exactly what the exact path accepts, with the same value,
    or a value's fate would depend on the other values of its batch."""
    candidate = _only_matching(pa.array(values, pa.string()), _TIMESTAMP)
    exact = _timestamp_by_parts(candidate).view(pa.int64()).to_pylist()  # microseconds: no year limits
    for i, value in enumerate(values):
        try:
            fast = _timestamp_by_cast(candidate.slice(i, 1)).view(pa.int64()).to_pylist()[0]
        except pa.ArrowInvalid:
            assert exact[i] is None, value  # the batch falls back to the exact path: also rejected
        else:
            assert fast == exact[i], value


def test_landing_names():
    name = parse_landing_name("crm_export_subscribers_20240105T060000Z.csv.gz")
    assert (name.at, name.fmt, name.stamp) == (datetime(2024, 1, 5, 6), "csv.gz", "20240105T060000Z")
    for bad in ["subscribers.csv", "s_20240105T060000Z.xlsx", "s_20240105T060000.csv", "s_20240230T000000Z.csv",
                "20240105T060000Z_s.csv", "s-20240105T060000Z.csv"]:
        with pytest.raises(BadLandingName):
            parse_landing_name(bad)


def _csv_with_problems(rng: random.Random, n: int) -> tuple[bytes, list[int], list[int]]:
    """A CSV whose good rows carry their own record number in `n`, with broken rows and multi-line values."""
    lines, good, broken = ["subscriber_id,email,status,n"], [], []
    for record in range(1, n + 1):
        roll = rng.random()
        if roll < 0.05:
            lines.append(f"x{record},only-two-cells")
            broken.append(record)
        elif roll < 0.08:
            lines.append(f's{record},a@example.com,active,{record},"extra"')
            broken.append(record)
        elif roll < 0.12:
            lines.append(f's{record},a@example.com,"act\nive",{record}')  # multi-line value, bad status
            good.append(record)
        else:
            lines.append(f"s{record},a@example.com,active,{record}")
            good.append(record)
        if rng.random() < 0.02:
            lines.append("")  # blank lines are not records
    return ("\n".join(lines) + "\n").encode(), good, broken


@pytest.mark.parametrize("seed", range(4))
def test_row_numbers_stay_exact_across_blocks_and_broken_rows(tmp_path, seed):
    data, good, broken = _csv_with_problems(random.Random(seed), 3000)
    path = tmp_path / "s.csv"
    path.write_bytes(data)
    reader = readers.CsvReader(path, TableSpec.for_kind("subscribers", FieldCatalog()), compressed=False,
                               block_size=2048)
    numbers, cells, broken_numbers = [], [], []
    for batch in reader.batches():
        numbers += batch.row_numbers.tolist()
        cells += batch.columns.get("n", pa.array([], pa.string())).to_pylist()
        broken_numbers += [b.row_number for b in batch.broken]
    reader.finish()
    assert numbers == good
    assert [int(c) for c in cells] == good  # each row carries its own record number
    assert sorted(broken_numbers) == broken


def test_a_record_larger_than_the_block_is_retried_then_rejected(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "CSV_BLOCK_SIZES", (1024, 16384))
    monkeypatch.setattr(readers, "_HEADER_BLOCK", 1024)
    paths = Paths(defs=tmp_path / "d", data=tmp_path / "data")
    paths.landing_subscribers.mkdir(parents=True)
    (paths.landing_subscribers / "fits_20240101T000000Z.csv").write_text(
        "subscriber_id,email,status,first_name\n" + "s1,a@example.com,active,Ann\n" * 50
        + f"s2,b@example.com,active,{'y' * 5000}\n")
    (paths.landing_subscribers / "too_big_20240102T000000Z.csv").write_text(
        f"subscriber_id,email,status,first_name\ns1,a@example.com,active,{'z' * 100_000}\n")
    spec = TableSpec.for_kind("subscribers", FieldCatalog())
    small = readers.CsvReader(paths.landing_subscribers / "fits_20240101T000000Z.csv", spec, compressed=False,
                              block_size=1024)
    with pytest.raises(RecordTooLarge):  # so the ingest below must have retried with the bigger block
        list(small.batches())
    report = ingest_landing(paths, FieldCatalog())
    assert report.ingested == ["fits_20240101T000000Z.csv"]
    assert [r.file for r in report.rejected] == ["too_big_20240102T000000Z.csv"]
    assert "a CSV record is larger than" in report.rejected[0].reason
    [info] = list_snapshots(paths)
    assert read_snapshot(info, FieldCatalog()).column("first_name").to_pylist()[-1] == "y" * 5000
    assert quarantine_table(paths).num_rows == 50 - 1  # s1 repeated 50 times: the last one wins


def test_quote_counter_sees_every_byte():
    stream = readers._CheckedStream(io.BytesIO(b'a,"b"\n"c""d",e'))
    data = stream.read()
    assert data.endswith(b"\n") and stream.quotes == 6
