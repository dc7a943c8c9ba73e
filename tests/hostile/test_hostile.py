"""The hostile-input corpus (issue 19): every case an attacker or a broken
export could bring, run end to end against real files, DuckDB and the CLI.

Small inputs live in tests/hostile/cases/; big ones (bombs, wide files, long
lines) are generated into tmp by each test, never committed. Sections:
query (read-only session), landing (symlinks, ingest limits), definitions
(alias bombs, name patterns), terminal output (markup, control characters)
and permissions.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest
from conftest import AS_OF, write_project
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.publish.catalog import open_warehouse
from pipelines.runner import execute_refresh
from pipelines.settings import Paths

CASES = Path(__file__).resolve().parent / "cases"
runner = CliRunner()


def segments(paths: Paths, *args: str):
    return runner.invoke(app, [*args, "--defs", str(paths.defs), "--data", str(paths.data)])


def fails(result, code: int = 1) -> str:
    """The one stderr line of a failed command."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def data_files(paths: Paths) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in Path(paths.data).rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Paths:
    paths = write_project(tmp_path_factory.mktemp("hostile_project"))
    with dg.instance_for_test() as instance:
        execute_refresh(paths, as_of=AS_OF, instance=instance)
    return paths


# --------------------------------------------------------------------------- query only reads


@pytest.fixture
def import_dir(tmp_path) -> Path:
    """A folder IMPORT DATABASE would run: its schema.sql writes a file."""
    folder = tmp_path / "import_me"
    folder.mkdir()
    (folder / "schema.sql").write_text(f"COPY (SELECT 42 AS x) TO '{tmp_path / 'pwned.csv'}';\n")
    (folder / "load.sql").write_text("")
    return folder


def test_query_cannot_import_a_database(published, import_dir):
    before = data_files(published)
    for sql in (f"IMPORT DATABASE '{import_dir}'", f"PRAGMA import_database('{import_dir}')"):
        line = fails(segments(published, "query", sql))
        assert "refused" in line and "read-only" in line, line
    assert not (import_dir.parent / "pwned.csv").exists()
    assert data_files(published) == before


@pytest.mark.parametrize("sql", [
    "COPY segments TO '{tmp}/out.csv'",
    "COPY (SELECT * FROM subscribers) TO '{tmp}/out.csv'",
    "SELECT 1; COPY segments TO '{tmp}/out.csv'",
    "EXPORT DATABASE '{tmp}/export'",
    "ATTACH '{tmp}/other.duckdb'",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "RESET lock_configuration",
    "PRAGMA enable_profiling",
    "PRAGMA threads = 1",
    "CREATE TABLE t AS SELECT 1",
    "CREATE MACRO m() AS 1",
    "CALL pragma_version()",
    "USE memory",
    "DETACH warehouse",
    "CHECKPOINT",
    "UPDATE EXTENSIONS",
    "EXPLAIN ANALYZE COPY segments TO '{tmp}/out.csv'",
    "EXPLAIN (FORMAT json) COPY segments TO '{tmp}/out.csv'",
])
def test_query_refuses_anything_but_reads(published, tmp_path, sql):
    before = data_files(published)
    line = fails(segments(published, "query", sql.format(tmp=tmp_path)))
    assert "refused" in line and "read-only" in line, line
    assert "ValueError" not in line
    assert list(tmp_path.iterdir()) == []
    assert data_files(published) == before


@pytest.mark.parametrize("sql", [
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_blob('/etc/passwd')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM read_parquet('https://example.com/x.parquet')",
    "SELECT * FROM 'https://example.com/x.csv'",
    "SELECT * FROM read_csv('{data}/landing/subscribers/subscribers_20261127T050000Z.csv')",
    "SELECT * FROM read_csv('{data}/archive/**/*.csv')",
])
def test_query_reads_no_file_but_the_published_ones(published, sql, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    line = fails(segments(published, "query", sql.format(data=published.data)))
    assert "root:" not in line and "ann@example.com" not in line, line
    assert not home.exists()  # no extension was downloaded into ~/.duckdb


@pytest.mark.parametrize("sql", [
    "SELECT count(*) FROM subscribers",
    "WITH s AS (SELECT * FROM segments) SELECT count(*) FROM s",
    "FROM segment_membership LIMIT 1",
    "VALUES (1, 2)",
    "DESCRIBE subscribers",
    "SHOW TABLES",
    "SUMMARIZE segments",
    "EXPLAIN SELECT * FROM segments",
    "PRAGMA table_info('segments')",
    "PRAGMA version",
    "SELECT count(*) FROM events",
    "SELECT count(*) FROM segment_membership_history",
])
def test_query_still_reads_every_relation(published, sql):
    result = segments(published, "query", sql, "--format", "csv")
    assert result.exit_code == 0, result.output


def test_the_warehouse_session_is_locked_even_past_the_check(published, tmp_path):
    """The statement check is the first line; the connection itself refuses too."""
    con = open_warehouse(published)
    try:
        assert con.execute("SELECT count(*) FROM recipients").fetchone()[0] >= 0
        for sql in (f"COPY (SELECT 1) TO '{tmp_path}/x.csv'", f"ATTACH '{tmp_path}/x.duckdb'",
                    "SELECT * FROM read_text('/etc/passwd')", "SET enable_external_access = true",
                    "SET autoinstall_known_extensions = true", "LOAD httpfs",
                    f"IMPORT DATABASE '{tmp_path}'"):
            with pytest.raises(duckdb.Error):
                con.execute(sql)
    finally:
        con.close()
    assert list(tmp_path.iterdir()) == []
