"""segment_membership written as several Parquet files in parallel reads back as one relation."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.publish.membership_files import (
    PartsWriter,
    membership_files,
    part_path,
)
from pipelines.publish.relations import RELATIONS

SCHEMA = pa.schema([("segment", pa.string()), ("subscriber_id", pa.string())])


def read_membership(main) -> pa.Table:
    """The relation as the warehouse's view reads it, in (segment, subscriber_id) order."""
    relation = next(r for r in RELATIONS if r.name == "segment_membership")
    query = relation.query(main.parent).order_by("segment", "subscriber_id")
    with duckdb.connect() as con:
        return con.sql(query.sql(dialect="duckdb")).to_arrow_table()


def groups(count: int, size: int) -> list[pa.Table]:
    """Row groups of a relation sorted by (segment, subscriber_id), each with its own rows."""
    rows = [(f"seg_{i // 7:02d}", f"s{i:04d}") for i in range(count * size)]
    return [pa.Table.from_pylist([{"segment": s, "subscriber_id": p} for s, p in rows[g * size:(g + 1) * size]],
                                 schema=SCHEMA) for g in range(count)]


@pytest.mark.parametrize(("writers", "count"), [(1, 5), (2, 5), (3, 7), (4, 2), (3, 1)])
def test_row_groups_dealt_to_files_read_back_in_order(tmp_path, writers, count):
    main = tmp_path / "segment_membership.parquet"
    writer = PartsWriter(main, SCHEMA, count=writers, compression="zstd")
    written = groups(count, 3)
    for table in written:
        writer.write(table)
    writer.close()
    files = membership_files(main)
    assert files == [part_path(main, i) for i in range(min(writers, count))]
    expected = pa.concat_tables(written)
    assert read_membership(main).equals(expected)
    assert sum(pq.read_metadata(f).num_rows for f in files) == expected.num_rows  # metadata agrees
    for file in files:  # each file is sorted on its own
        pairs = pq.read_table(file).to_pylist()
        assert pairs == sorted(pairs, key=lambda r: (r["segment"], r["subscriber_id"]))


def test_no_rows_still_makes_the_first_file(tmp_path):
    main = tmp_path / "segment_membership.parquet"
    PartsWriter(main, SCHEMA, count=2).close()
    assert membership_files(main) == [main]
    assert read_membership(main).num_rows == 0 and read_membership(main).schema == SCHEMA


def test_parts_of_an_earlier_attempt_are_removed(tmp_path):
    main = tmp_path / "segment_membership.parquet"
    writer = PartsWriter(main, SCHEMA, count=3)
    for table in groups(3, 2):
        writer.write(table)
    writer.close()
    assert len(membership_files(main)) == 3
    again = PartsWriter(main, SCHEMA, count=3)  # a retried step, with fewer rows this time
    again.write(groups(1, 2)[0])
    again.close()
    assert membership_files(main) == [main]
    assert read_membership(main).num_rows == 2


def test_a_failed_write_closes_every_file_and_raises(tmp_path):
    main = tmp_path / "segment_membership.parquet"
    writer = PartsWriter(main, SCHEMA, count=2)
    writer.write(groups(1, 2)[0])
    writer.write(pa.table({"other": [1]}))  # not the file's schema: the write fails on its thread
    with pytest.raises(ValueError):
        writer.close()
    assert pq.read_metadata(main).num_rows == 2


def membership_view_sql(version_dir) -> str:
    relation = next(r for r in RELATIONS if r.name == "segment_membership")
    return f"CREATE VIEW segment_membership AS {relation.query(version_dir).sql(dialect='duckdb')}"


def test_the_catalog_view_reads_every_file(tmp_path):
    main = tmp_path / "segment_membership.parquet"
    single = PartsWriter(main, SCHEMA, count=1)
    one = groups(1, 3)[0]
    single.write(one)
    single.close()
    with duckdb.connect() as con:  # one file: the same generated view
        con.execute(membership_view_sql(tmp_path))
        rows = con.execute("SELECT segment, subscriber_id FROM segment_membership ORDER BY ALL").fetchall()
    assert rows == sorted(tuple(r.values()) for r in one.to_pylist())
    writer = PartsWriter(main, SCHEMA, count=2)
    written = groups(4, 3)
    for table in written:
        writer.write(table)
    writer.close()
    sql = membership_view_sql(tmp_path)
    with duckdb.connect() as con:
        con.execute(sql)
        rows = con.execute("SELECT segment, subscriber_id FROM segment_membership ORDER BY ALL").fetchall()
    assert rows == sorted(tuple(r.values()) for r in pa.concat_tables(written).to_pylist())
