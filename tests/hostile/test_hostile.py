"""The hostile-input corpus (issue 19): every case an attacker or a broken
export could bring, run end to end against real files, DuckDB and the CLI.

Small inputs live in tests/hostile/cases/; big ones (bombs, wide files, long
lines) are generated into tmp by each test, never committed. Sections:
query (read-only session), landing (symlinks, ingest limits), definitions
(alias bombs, name patterns), terminal output (markup, control characters)
and permissions.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import AS_OF, SUBSCRIBERS_CSV, write_project
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.core.settings import Paths
from pipelines.lake.ingest import ingest_landing
from pipelines.lake.snapshots import list_snapshots, quarantine_table
from pipelines.publish.catalog import open_warehouse
from pipelines.runner import execute_refresh
from pipelines.segments.definition_rules import CUSTOM_FIELD_PATTERN, KEY_PATTERN
from pipelines.segments.fields import FieldCatalog
from pipelines.segments.loader import load_project

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


# --------------------------------------------------------------------------- landing: symbolic links

SNAPSHOT = "subscriber_id,email,status\ns1,a@example.com,active\n"


def landing_paths(tmp_path: Path) -> Paths:
    paths = Paths(defs=tmp_path / "segment_defs", data=tmp_path / "data")
    paths.landing_subscribers.mkdir(parents=True)
    paths.landing_events.mkdir(parents=True)
    return paths


def everything_under(folder: Path) -> str:
    """The text of every file below `folder` (to prove nothing was copied)."""
    return "".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.fixture
def secret(tmp_path) -> Path:
    """A file outside the data folder that a link points at."""
    target = tmp_path / "outside" / "secret.csv"
    target.parent.mkdir()
    target.write_text("subscriber_id,email,status\nSECRET-LINE,secret@example.com,active\n")
    return target


@pytest.mark.parametrize("kind", ["subscribers", "events"])
def test_a_linked_landing_file_is_rejected_unread(tmp_path, secret, kind):
    paths = landing_paths(tmp_path)
    folder = paths.landing / kind
    link = folder / f"{kind}_20240101T000000Z.csv"
    link.symlink_to(secret)
    (folder / "passwd_20240102T000000Z.csv").symlink_to("/etc/passwd")
    report = ingest_landing(paths, FieldCatalog())
    assert sorted(r.file for r in report.rejected) == sorted([link.name, "passwd_20240102T000000Z.csv"])
    assert all("symbolic link" in r.reason for r in report.rejected), report.rejected
    assert report.ingested == []
    assert link.is_symlink() and link.readlink() == secret  # the link itself stays in landing
    assert secret.read_text().count("SECRET-LINE") == 1
    stored = everything_under(paths.data)
    assert "SECRET-LINE" not in stored and "root:" not in stored
    assert not (paths.archive / kind).exists() or not any((paths.archive / kind).rglob("*.csv"))
    # reported once, like a rejected file; the next run goes on
    again = ingest_landing(paths, FieldCatalog())
    assert again.rejected == [] and sorted(again.skipped) == sorted(r.file for r in report.rejected)


def test_a_linked_sub_folder_and_a_linked_landing_folder_are_not_followed(tmp_path, secret):
    paths = landing_paths(tmp_path)
    (paths.landing_subscribers / "sub_20240101T000000Z.csv").symlink_to(secret.parent, target_is_directory=True)
    report = ingest_landing(paths, FieldCatalog())
    assert [r.file for r in report.rejected] == ["sub_20240101T000000Z.csv"]
    assert "symbolic link" in report.rejected[0].reason
    # the whole events folder is a link to a folder of valid-looking exports
    paths.landing_events.rmdir()
    (secret.parent / "events_20240101T000000Z.csv").write_text(
        "event_id,subscriber_id,event,occurred_at\nSECRET-EVENT,s1,open,2024-01-01T00:00:00Z\n")
    paths.landing_events.symlink_to(secret.parent, target_is_directory=True)
    report = ingest_landing(paths, FieldCatalog())
    assert [r.file for r in report.rejected] == ["events/"]
    assert "symbolic link" in report.rejected[0].reason and report.ingested == []
    assert "SECRET" not in everything_under(paths.data)


def test_segments_run_reports_a_link_in_one_line_without_its_content(tmp_path):
    paths = write_project(tmp_path)
    (paths.landing_subscribers / "passwd_20261127T060000Z.csv").symlink_to("/etc/passwd")
    result = runner.invoke(app, ["run", "--as-of", AS_OF, "--defs", str(paths.defs), "--data", str(paths.data)])
    line = fails(result)
    assert "symbolic link" in line and "root:" not in result.output
    assert (paths.landing_subscribers / "passwd_20261127T060000Z.csv").is_symlink()


# --------------------------------------------------------------------------- landing: ingest limits


def limits(**given: int):
    # imported here, as in the other sections: on code without limits each test fails alone
    from pipelines.core.settings import ingest_limits

    return ingest_limits(**given)


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_gzip_bomb_is_rejected_at_the_decompressed_size_limit(tmp_path):
    paths = landing_paths(tmp_path)
    row = b"s1,a@example.com,active\n"
    bomb = paths.landing_subscribers / "bomb_20240101T000000Z.csv.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as out:
        out.write(b"subscriber_id,email,status\n")
        chunk = row * 100_000
        for _ in range(40):  # 96 MB decompressed from about 100 KB
            out.write(chunk)
    assert bomb.stat().st_size < 1 << 20
    report = ingest_landing(paths, FieldCatalog(), limits(max_file_bytes=8 << 20))
    assert [r.file for r in report.rejected] == [bomb.name]
    assert "larger than 8 MiB once decompressed" in report.rejected[0].reason
    assert "max_file_bytes" in report.rejected[0].reason
    assert list_snapshots(paths) == [] and quarantine_table(paths).num_rows == 0


def test_an_uncompressed_file_over_the_size_limit_is_rejected_before_reading(tmp_path):
    paths = landing_paths(tmp_path)
    (paths.landing_subscribers / "big_20240101T000000Z.csv").write_text(SNAPSHOT + "s2,b@example.com,active\n" * 1000)
    (paths.landing_events / "big_20240101T000000Z.jsonl").write_text(
        '{"event_id": "e1", "subscriber_id": "s1", "event": "open", "occurred_at": "2024-01-01T00:00:00Z"}\n' * 1000)
    report = ingest_landing(paths, FieldCatalog(), limits(max_file_bytes=10_000))
    assert len(report.rejected) == 2
    assert all("once decompressed" in r.reason for r in report.rejected)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_a_file_with_too_many_columns_is_rejected_quickly(tmp_path, fmt):
    """A 50,000-column CSV ran ~200 s into an out-of-memory error and blocked every later run."""
    paths = landing_paths(tmp_path)
    names = ["subscriber_id", "email", "status", *(f"c{i}" for i in range(50_000))]
    target = paths.landing_subscribers / f"wide_20240101T000000Z.{fmt}"
    values = ["s1", "a@example.com", "active", *("x" for _ in range(50_000))]
    if fmt == "csv":
        target.write_text(",".join(names) + "\n" + ",".join(values) + "\n")
    elif fmt == "jsonl":
        target.write_text(json.dumps(dict(zip(names, values, strict=True))) + "\n")
    else:
        pq.write_table(pa.table({n: [v] for n, v in zip(names, values, strict=True)}), target)
    started = time.monotonic()
    report = ingest_landing(paths, FieldCatalog())
    assert time.monotonic() - started < 60
    assert [r.file for r in report.rejected] == [target.name]
    assert "more than 1,000 columns" in report.rejected[0].reason and "max_columns" in report.rejected[0].reason
    # the next file goes in: nothing is blocked
    (paths.landing_subscribers / "ok_20240102T000000Z.csv").write_text(SNAPSHOT)
    assert ingest_landing(paths, FieldCatalog()).ingested == ["ok_20240102T000000Z.csv"]


def test_a_jsonl_line_over_the_record_limit_rejects_the_file_without_reading_it_whole(tmp_path):
    paths = landing_paths(tmp_path)
    target = paths.landing_events / "long_20240101T000000Z.jsonl"
    with open(target, "w") as out:
        out.write('{"event_id": "e1", "subscriber_id": "s1", "event": "open", "occurred_at": "2024-01-01T00:00:00Z"}\n')
        out.write('{"event_id": "e2", "subscriber_id": "s1", "event": "open", "occurred_at": "2024-01-01T00:00:00Z", '
                  '"note": "' + "x" * (48 << 20) + '"}\n')
    before = rss_mib()
    report = ingest_landing(paths, FieldCatalog(), limits(max_record_bytes=1 << 20))
    assert [r.file for r in report.rejected] == [target.name]
    assert "line 2 is longer than 1 MiB" in report.rejected[0].reason
    assert rss_mib() - before < 40  # the 48 MB line was never held whole


def test_a_csv_record_over_the_record_limit_rejects_the_file(tmp_path):
    paths = landing_paths(tmp_path)
    (paths.landing_subscribers / "long_20240101T000000Z.csv").write_text(
        "subscriber_id,email,status,first_name\ns1,a@example.com,active," + "y" * (3 << 20) + "\n")
    report = ingest_landing(paths, FieldCatalog(), limits(max_record_bytes=1 << 20))
    assert len(report.rejected) == 1 and "a CSV record is larger than 1 MiB" in report.rejected[0].reason


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_huge_cell_is_quarantined_with_its_raw_row_cut(tmp_path, fmt):
    paths = landing_paths(tmp_path)
    big = "z" * (4 << 20)
    target = paths.landing_subscribers / f"cell_20240101T000000Z.{fmt}"
    if fmt == "csv":
        target.write_text(f"subscriber_id,email,status,first_name\ns1,a@example.com,active,{big}\n"
                          "s2,b@example.com,active,Bo\n")
    else:
        target.write_text(json.dumps({"subscriber_id": "s1", "email": "a@example.com", "status": "active",
                                      "first_name": big}) + "\n"
                          + json.dumps({"subscriber_id": "s2", "email": "b@example.com", "status": "active"}) + "\n")
    report = ingest_landing(paths, FieldCatalog())
    assert report.ingested == [target.name]
    [row] = quarantine_table(paths).to_pylist()
    assert row["row_number"] == 1
    assert len(row["raw"]) == 65_536 and row["raw"].startswith("s1" if fmt == "csv" else "{")
    assert "raw row cut to its first 65,536" in row["reason"]


def test_the_limits_are_set_in_the_resource_and_the_environment(tmp_path, monkeypatch):
    from pipelines.core.settings import IngestLimits
    from pipelines.defs.resources import SegmentsResource

    assert SegmentsResource(max_columns=7, max_record_bytes=99).ingest_limits() == IngestLimits(
        max_columns=7, max_record_bytes=99)
    monkeypatch.setenv("SEGMENTS_MAX_COLUMNS", "4")
    assert SegmentsResource().ingest_limits().max_columns == 4
    assert SegmentsResource(max_columns=9).ingest_limits().max_columns == 9
    # and `segments run` (the Dagster job) applies them
    paths = write_project(tmp_path)
    result = runner.invoke(app, ["run", "--as-of", AS_OF, "--defs", str(paths.defs), "--data", str(paths.data)])
    assert "more than 4 columns" in fails(result)


# --------------------------------------------------------------------------- definitions

REPO = Path(__file__).resolve().parents[2]


def run_cli_bounded(*args: str, memory: int = 2 << 30, timeout: int = 120) -> subprocess.CompletedProcess:
    """The CLI in a child process with a memory ceiling: a bomb fails it instead of the machine."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", "from pipelines.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=timeout, preexec_fn=limit, env=env)


def defs_with(tmp_path: Path, files: dict[str, str]) -> Path:
    paths = write_project(tmp_path)
    for name, text in files.items():
        (paths.defs / name).write_text(text)
    return paths.defs


def test_a_yaml_alias_bomb_is_refused_in_one_line(tmp_path):
    bomb = (CASES / "alias_bomb.yaml").read_text()
    assert len(bomb) < 4096
    defs = defs_with(tmp_path, {"bomb.yaml": bomb})
    started = time.monotonic()
    proc = run_cli_bounded("validate", "--defs", str(defs))
    assert time.monotonic() - started < 60
    assert proc.returncode == 1, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert re.fullmatch(r".*bomb\.yaml:4:5: YAML anchors and aliases .*", lines[0]), lines[0]


@pytest.mark.parametrize("text", [
    "name: A\ngroups:\n  - filters: &f\n      - {field: state, op: is, value: NY}\n  - filters: *f\n",
    "name: &n A\ngroups:\n  - filters:\n      - {field: state, op: is, value: *n}\n",
    "base: &b {field: state, op: is, value: NY}\nname: A\ngroups:\n  - filters:\n      - <<: *b\n",
    "name: A\ngroups:\n  - filters:\n      - {field: state, op: is, value: NY}\n    x: &unused 1\n",
    # an empty value sends the file past the fast composer: the refusal holds there too
    "name: A\ndescription:\ngroups: &g\n  - filters:\n      - {field: state, op: is, value: NY}\n",
])
def test_anchors_and_aliases_are_refused_wherever_they_are(tmp_path, text):
    defs = defs_with(tmp_path, {"aliased.yaml": text})
    project, problems = load_project(defs)
    [message] = [p.message for p in problems if "aliased.yaml" in str(p)]
    assert message.startswith("YAML anchors and aliases (&name, *name) are not allowed"), message


def test_a_huge_definition_file_is_refused_unread(tmp_path):
    defs = defs_with(tmp_path, {"huge.yaml": "name: Huge\n# " + "x" * (2 << 20) + "\n"})
    _, problems = load_project(defs)
    [problem] = [p for p in problems if "huge.yaml" in str(p)]
    assert "larger than 1 MiB" in problem.message and (problem.line, problem.col) == (1, 1)


def test_a_key_with_a_trailing_newline_is_not_a_key(tmp_path):
    defs = defs_with(tmp_path, {"evil\n.yaml": "name: Evil\ngroups:\n  - filters:\n"
                                               "      - {field: state, op: is, value: NY}\n"})
    project, problems = load_project(defs)
    assert "evil\n" not in project.segments
    assert any("evil" in str(p) for p in problems), problems
    assert not KEY_PATTERN.match("evil\n") and not CUSTOM_FIELD_PATTERN.match("tier\n")


def test_a_field_with_a_trailing_newline_is_refused_not_read_as_another_column(tmp_path):
    defs = defs_with(tmp_path, {})
    fields_file = defs / "_fields.yaml"
    fields_file.write_text(fields_file.read_text().replace("subscriber_fields:\n", 'subscriber_fields:\n  "tier\\n": string\n'))
    _, problems = load_project(defs)
    assert any("_fields.yaml" in str(p) and "tier" in p.message for p in problems), problems


def test_an_identifier_with_a_newline_is_quoted_in_sql():
    from pipelines.segments.to_sql import _needs_quotes

    assert _needs_quotes("tier\n") and not _needs_quotes("tier")


# --------------------------------------------------------------------------- terminal output

ESC = "\x1b"
HOSTILE_TEXT = ["[/]", "[link=https://evil.example]click me[/link]", f"{ESC}[2J{ESC}[31mred",
                f"{ESC}]8;;https://evil.example{ESC}\\link{ESC}]8;;{ESC}\\", "back\bspace\rover"]


@pytest.fixture(scope="module")
def hostile_published(tmp_path_factory) -> Paths:
    rows = "".join(f's{i},h{i}@example.com,active,"{text}",Albany,NY,Checkout,2026-11-20T10:00:00Z,,,,,\n'
                   for i, text in enumerate(HOSTILE_TEXT, start=10))
    paths = write_project(tmp_path_factory.mktemp("hostile_text"), subscribers=SUBSCRIBERS_CSV + rows)
    (paths.defs / "markup_name.yaml").write_text(
        'name: "[/] [link=https://evil.example]VIP[/link] \\e[31mred \\r"\n'
        'description: "[bold]not bold[/] \\e]8;;https://evil.example\\e\\\\"\n'
        "groups:\n  - filters:\n      - {field: state, op: is, value: NY}\n")
    with dg.instance_for_test() as instance:
        execute_refresh(paths, as_of=AS_OF, instance=instance)
    return paths


def shows_no_control(text: str) -> None:
    assert ESC not in text and "\b" not in text and "\r" not in text, repr(text[:300])


def test_query_table_shows_markup_and_controls_as_text(hostile_published):
    result = segments(hostile_published, "query", "SELECT subscriber_id, first_name FROM subscribers "
                                                  "WHERE subscriber_id >= 's10' ORDER BY subscriber_id")
    assert result.exit_code == 0, result.output
    shows_no_control(result.stdout)
    assert "[/]" in result.stdout and "[link=https://evil.example]" in result.stdout
    assert "\\x1b[31mred" in result.stdout and "\\x08" in result.stdout


def test_run_with_a_markup_segment_name_succeeds(tmp_path):
    paths = write_project(tmp_path)
    (paths.defs / "markup_name.yaml").write_text(
        'name: "[/] [link=https://evil.example]VIP[/link] \\e[31mred"\n'
        "groups:\n  - filters:\n      - {field: state, op: is, value: NY}\n")
    result = runner.invoke(app, ["run", "--as-of", AS_OF, "--defs", str(paths.defs), "--data", str(paths.data)])
    assert result.exit_code == 0, result.output
    shows_no_control(result.stdout)
    assert "Published" in result.stdout and "markup_name" in result.stdout


@pytest.mark.parametrize("args", [["list"], ["show", "markup_name"],
                                  ["preview", "markup_name", "--sample", "20"],
                                  ["explain", "markup_name", "s10"], ["diff", "markup_name"]])
def test_commands_print_names_and_data_as_text(hostile_published, args):
    result = segments(hostile_published, *args)
    assert result.exit_code == 0, result.output
    shows_no_control(result.stdout)
    if args[0] != "diff":  # diff names no segment by its name
        assert "[/]" in result.stdout


def test_validate_and_errors_print_control_characters_escaped_on_one_line(tmp_path):
    paths = write_project(tmp_path)
    (paths.defs / f"bad{ESC}[2Jname.yaml").write_text("name: x\n")
    result = segments(paths, "validate")
    assert result.exit_code == 1
    shows_no_control(result.stderr)
    assert "bad\\x1b[2Jname.yaml" in result.stderr
    line = fails(segments(paths, "show", f"no{ESC}[2Jpe\nx"))
    shows_no_control(line)


# --------------------------------------------------------------------------- permissions


def test_published_files_are_not_world_readable_whatever_the_umask(tmp_path):
    """A 0600 landing file became 0644 copies; recipients and the warehouse were world-readable."""
    previous = os.umask(0o000)
    try:
        paths = write_project(tmp_path)
        for landing in paths.landing.rglob("*.csv"):
            landing.chmod(0o600)
        (paths.landing_subscribers / "broken_20261127T040000Z.csv").write_text("no header\x00\n")
        (paths.landing_subscribers / "broken_20261127T040000Z.csv").chmod(0o600)
        runner.invoke(app, ["run", "--as-of", AS_OF, "--defs", str(paths.defs), "--data", str(paths.data)])
        result = runner.invoke(app, ["run", "--as-of", AS_OF, "--defs", str(paths.defs), "--data", str(paths.data)])
        assert result.exit_code == 0, result.output
    finally:
        os.umask(previous)
    written = [p for p in paths.data.rglob("*") if paths.landing not in p.parents and p != paths.landing]
    names = {p.relative_to(paths.data).parts[0] for p in written}
    assert {"archive", "rejected", "lake", "published", "audiences", "warehouse.duckdb"} <= names, names
    assert any(p.name == "recipients.csv" for p in written)
    open_to_all = [f"{p.relative_to(paths.data)} {p.stat().st_mode & 0o777:o}" for p in written
                   if not p.is_symlink() and p.stat().st_mode & 0o007]
    assert open_to_all == []
