"""The `segments` commands that read: list, show, compile, query, preview, explain, diff.

One real project (tests/conftest.py: spec example definitions, 5 subscribers)
is published twice by the real Dagster job, at AS_OF and at AS_OF2, in a
module fixture shared by every test; tests that edit definitions work on a
copy of the definitions folder and only read the shared data folder.

Memberships at AS_OF2 = 2026-12-20T06:00Z, worked out by hand:
- active_users (purchase in 30 days): s1 (11-21), s4 (11-28, after AS_OF but
  before AS_OF2); s3's purchases (11-10, 09-01) are too old  -> {s1, s4}
- new_customers: created in 30 days (s1 11-20T10, s4 11-24T22), exactly one
  purchase, Checkout form                                     -> {s1, s4}
- subscribers_in_new_york {s1, s2, s4}, webinar_attendees {s1, s2, s5},
  engaged_subscribers {s2, s5}, ny_webinar_not_customers {s2}
- audience nyc_meetup_invite: (NY or webinar) minus active_users, active
  status only                                                 -> {s5}
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from conftest import AS_OF, write_project
from rich.console import Console
from typer.testing import CliRunner

from pipelines import cli
from pipelines.cli import app
from pipelines.commands.explain import explain
from pipelines.core.settings import Paths
from pipelines.lake.snapshots import read_events
from pipelines.runner import execute_refresh
from pipelines.segments.loader import load_project

AS_OF2 = "2026-12-20T06:00:00Z"
REPO = Path(__file__).resolve().parent.parent
SEGMENTS_BIN = REPO / ".venv" / "bin" / "segments"

AT_AS_OF2 = {
    "active_users": {"s1", "s4"},
    "engaged_subscribers": {"s2", "s5"},
    "new_customers": {"s1", "s4"},
    "ny_webinar_not_customers": {"s2"},
    "subscribers_in_new_york": {"s1", "s2", "s4"},
    "webinar_attendees": {"s1", "s2", "s5"},
}

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """Tables as wide as they need: rich fixes the width at import from COLUMNS, if set."""
    monkeypatch.setattr(cli, "out", Console(highlight=False, soft_wrap=True, width=250))


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Paths:
    paths = write_project(tmp_path_factory.mktemp("cli_project"))
    with dg.instance_for_test() as instance:
        execute_refresh(paths, as_of=AS_OF, instance=instance)
        execute_refresh(paths, as_of=AS_OF2, instance=instance, allow_future=True)  # a fixed date, maybe ahead
    return paths


@pytest.fixture
def edited(published, tmp_path) -> Paths:
    """A copy of the definitions to edit, over the shared (read-only) data."""
    defs = tmp_path / "segment_defs"
    shutil.copytree(published.defs, defs)
    return Paths(defs=defs, data=published.data)


def segments(paths: Paths, *args: str):
    return runner.invoke(app, [*args, "--defs", str(paths.defs), "--data", str(paths.data)])


def ok(result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def fails(result, code: int = 1) -> str:
    """The one stderr line of a failed command."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def published_membership(paths: Paths) -> dict[str, set[str]]:
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        rows = con.execute("SELECT segment, subscriber_id FROM segment_membership").fetchall()
    out: dict[str, set[str]] = {}
    for segment, subscriber in rows:
        out.setdefault(segment, set()).add(subscriber)
    return out


def data_files(paths: Paths) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in Path(paths.data).rglob("*") if p.is_file()}


def test_the_fixture_is_what_the_tests_expect(published):
    assert published_membership(published) == AT_AS_OF2


# --------------------------------------------------------------------------- list


def test_list_json_has_size_change_and_last_run(published):
    rows = {r["segment"]: r for r in json.loads(ok(segments(published, "list", "--json")))}
    assert set(rows) == set(AT_AS_OF2)
    assert {k: r["members"] for k, r in rows.items()} == {k: len(v) for k, v in AT_AS_OF2.items()}
    assert rows["new_customers"]["change"] == 1 and rows["new_customers"]["previous_members"] == 1
    # s3 left and s4 entered: same size, one in, one out
    assert (rows["active_users"]["change"], rows["active_users"]["entered"], rows["active_users"]["exited"]) == (
        0, 1, 1)
    assert {r["last_run_as_of"] for r in rows.values()} == {AS_OF2}
    assert {r["definition"] for r in rows.values()} == {"unchanged"}


def test_list_table_and_working_tree_status(edited):
    (edited.defs / "engaged_subscribers.yaml").unlink()
    (edited.defs / "vip.yaml").write_text("name: VIP\ngroups:\n  - filters:\n      - {field: vip, op: is, value: true}\n")
    text = (edited.defs / "webinar_attendees.yaml").read_text()
    (edited.defs / "webinar_attendees.yaml").write_text(text.replace("webinar-2026", "webinar-2027"))
    out = ok(segments(edited, "list"))
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith("│")}
    assert "+1" in lines["new_customers"] and "2026-12-20T06:00:00Z" in lines["new_customers"]
    assert "deleted" in lines["engaged_subscribers"]
    assert "edited" in lines["webinar_attendees"]
    assert "not run yet" in lines["vip"]


def test_list_without_a_warehouse_says_run_first(tmp_path):
    paths = write_project(tmp_path)
    line = fails(segments(paths, "list"))
    assert "no warehouse" in line and "segments run" in line


# --------------------------------------------------------------------------- show


def test_show_json_definition_sql_members_and_history(published):
    data = json.loads(ok(segments(published, "show", "new_customers", "--json")))
    assert data["definition"] == (published.defs / "new_customers.yaml").read_text()
    assert data["members"] == 2 and data["run_as_of"] == AS_OF2
    assert [p["members"] for p in data["sizes"]] == [1, 2]
    assert [p["as_of"] for p in data["sizes"]] == [AS_OF, AS_OF2]
    assert "COUNT(*) FILTER" in data["sql"]


def test_show_text_has_sparkline_yaml_and_sql(published):
    out = ok(segments(published, "show", "new_customers"))
    assert "▁█" in out  # 1 -> 2 members
    assert "match: all" in out and "SELECT" in out
    assert "members now: 2" in out


def test_show_sql_runs_in_the_warehouse(published):
    data = json.loads(ok(segments(published, "show", "ny_webinar_not_customers", "--json")))
    with duckdb.connect(str(published.warehouse), read_only=True) as con:
        assert {r[0] for r in con.execute(data["sql"]).fetchall()} == {"s2"}
    assert data["depends_on"] == ["subscribers_in_new_york", "webinar_attendees", "active_users"]


def test_show_unknown_key_suggests_the_closest(published):
    line = fails(segments(published, "show", "new_customer"))
    assert line == "error: unknown segment 'new_customer' — did you mean 'new_customers'?"


# --------------------------------------------------------------------------- compile


def test_compile_duckdb_text_gives_the_published_members(published):
    project, _ = load_project(published.defs)
    events = read_events(published, project.catalog)
    with duckdb.connect(str(published.warehouse), read_only=True) as con:
        con.register("events", events)
        for key, members in AT_AS_OF2.items():
            sql = ok(segments(published, "compile", key, "--as-of", AS_OF2))
            assert {r[0] for r in con.execute(sql).fetchall()} == members, key


def test_compile_spark_dialect(published):
    sql = ok(segments(published, "compile", "webinar_attendees", "--dialect", "spark"))
    assert "ARRAYS_OVERLAP" in sql and "&&" not in sql


def test_compile_errors(published):
    assert "did you mean 'active_users'" in fails(segments(published, "compile", "activ_users"))
    assert "cannot read 'tomorrow'" in fails(segments(published, "compile", "active_users", "--as-of", "tomorrow"),
                                           code=2)
    assert "--dialect" in fails(segments(published, "compile", "active_users", "--dialect", "oracle"), code=2)


@pytest.mark.parametrize("command", [["run"], ["compile", "active_users"], ["preview", "active_users"],
                                     ["explain", "active_users", "s1"], ["demo"]])
def test_an_unreadable_as_of_is_a_usage_error(published, command):
    """Like any bad option value: one line, exit 2, before anything runs."""
    line = fails(segments(published, *command, "--as-of", "next tuesday"), code=2)
    assert "--as-of" in line and "cannot read 'next tuesday'" in line


# --------------------------------------------------------------------------- query


def test_query_formats(published):
    sql = "SELECT segment, members FROM segments WHERE segment LIKE 'n%' ORDER BY segment"
    assert ok(segments(published, "query", sql, "--format", "csv")) == (
        "segment,members\nnew_customers,2\nny_webinar_not_customers,1\n")
    assert json.loads(ok(segments(published, "query", sql, "--format", "json"))) == [
        {"segment": "new_customers", "members": 2}, {"segment": "ny_webinar_not_customers", "members": 1}]
    out = ok(segments(published, "query", sql))
    assert "new_customers" in out and "2 row(s)" in out
    out = ok(segments(published, "query", "SELECT * FROM segment_members_at('active_users', '2026-12-01')",
                      "--format", "csv"))
    assert out == "subscriber_id\ns1\ns3\n"


@pytest.mark.parametrize("example", sorted((REPO / "sql" / "examples").glob("*.sql")), ids=lambda p: p.name)
def test_query_runs_the_sql_examples_as_written(published, example):
    """Each example starts with a `--` comment: the CLI takes it as SQL, not as an option."""
    import csv
    import io

    text = example.read_text(encoding="utf-8")
    assert text.startswith("--")
    with duckdb.connect(str(published.warehouse), read_only=True) as con:
        expected = con.execute(text).fetchall()
    for args in (["query", text, "--format", "csv"], ["query", "--format", "csv", text]):
        rows = list(csv.reader(io.StringIO(ok(segments(published, *args)))))
        assert len(rows) == len(expected) + 1  # a header, then every row


def test_query_json_is_valid_json_with_nan_and_infinity(published):
    sql = "SELECT 'NaN'::DOUBLE AS n, '-inf'::DOUBLE AS i, [1.5, 'NaN'::DOUBLE] AS l, 2.5 AS x"
    assert json.loads(ok(segments(published, "query", sql, "--format", "json"))) == [
        {"n": None, "i": None, "l": [1.5, None], "x": 2.5}]


@pytest.mark.parametrize("sql", [
    "DROP TABLE segments",
    "DELETE FROM segment_membership",
    "SELECT 1; INSERT INTO runs VALUES (1)",
    "COPY segments TO 'out.csv'",
    "EXPLAIN ANALYZE COPY segments TO 'out.csv'",
    "ATTACH 'other.duckdb'",
    "CREATE TABLE t AS SELECT 1",
])
def test_query_refuses_writes(published, sql):
    before = data_files(published)
    line = fails(segments(published, "query", sql))
    assert "refused" in line and "read-only" in line
    assert data_files(published) == before


def test_query_errors_are_one_line(published):
    assert "Referenced column" in fails(segments(published, "query", "SELECT nope FROM segments"))
    assert "syntax error" in fails(segments(published, "query", "SELEC 1"))
    fails(segments(published, "query", "SELECT 1", "--format", "xml"), code=2)


# --------------------------------------------------------------------------- preview

DRAFT = """\
name: New Yorkers who have not bought lately
groups:
  - filters:
      - {segment: subscribers_in_new_york, op: is}
      - {segment: active_users, op: is_not}
      - {field: status, op: is_set}
"""


def test_preview_draft_file_evaluates_references_and_writes_nothing(published, tmp_path):
    draft = tmp_path / "ny_lapsed.yaml"
    draft.write_text(DRAFT)
    before = data_files(published)
    data = json.loads(ok(segments(published, "preview", str(draft), "--json")))
    assert data_files(published) == before
    assert (data["segment"], data["saved"], data["as_of"]) == ("ny_lapsed", False, AS_OF2)
    assert (data["members"], data["subscribers"], data["share"]) == (1, 5, 0.2)  # {s1,s2,s4} - {s1,s4}
    assert [row["subscriber_id"] for row in data["sample"]] == ["s2"]
    assert data["sample"][0]["email"] == "bob@example.com" and data["sample"][0]["status"] == "unsubscribed"
    overlaps = {o["segment"]: o for o in data["overlaps"]}
    assert len(overlaps) == 5  # the five largest published segments
    assert overlaps["subscribers_in_new_york"]["shared"] == 1
    assert overlaps["active_users"]["shared"] == 0
    assert overlaps["webinar_attendees"]["share_of_preview"] == 1.0


def test_preview_as_of_moves_the_referenced_segments_too(published, tmp_path):
    draft = tmp_path / "ny_lapsed.yaml"
    draft.write_text(DRAFT)
    # At AS_OF active_users was {s1, s3}: the draft is {s2, s4}.
    data = json.loads(ok(segments(published, "preview", str(draft), "--as-of", AS_OF, "--json")))
    assert data["members"] == 2
    assert {row["subscriber_id"] for row in data["sample"]} == {"s2", "s4"}
    assert any("overlaps use the published membership" in note for note in data["notes"])


def test_preview_saved_key_with_event_counts_and_text_output(published):
    data = json.loads(ok(segments(published, "preview", "new_customers", "--json", "--engine", "polars")))
    assert (data["saved"], data["members"], data["published_members"]) == (True, 2, 2)
    assert {row["subscriber_id"]: row["purchase events"] for row in data["sample"]} == {"s1": 1, "s4": 1}
    out = ok(segments(published, "preview", "new_customers", "--sample", "1"))
    assert "members: 2 of 5 subscribers (40.0%)" in out
    assert "Overlap with the largest published segments" in out


def test_preview_invalid_draft_prints_its_problems(published, tmp_path):
    draft = tmp_path / "typo.yaml"
    draft.write_text("name: Typo\ngroups:\n  - filters:\n      - {field: stat, op: is, value: NY}\n"
                     "      - {segment: no_such_segment, op: is}\n")
    result = segments(published, "preview", str(draft))
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1  # the first problem and how many more, like `compile` and `run`
    assert re.match(rf"^error: {re.escape(str(draft))}:4:\d+: ", lines[0])
    assert "did you mean 'state'?" in lines[0] and lines[0].endswith("(and 1 more; run `segments validate`)")


def test_preview_errors(published, tmp_path):
    assert "segment file not found" in fails(segments(published, "preview", str(tmp_path / "missing.yaml")))
    assert "did you mean 'active_users'" in fails(segments(published, "preview", "active_user"))
    assert "no subscriber snapshot at or before 2020-01-01" in fails(
        segments(published, "preview", "active_users", "--as-of", "2020-01-01"))
    assert "--as-of" in fails(segments(published, "preview", "active_users", "--as-of", "2026-13-45"), code=2)


# --------------------------------------------------------------------------- explain


def test_explain_member_filter_by_filter(published):
    data = json.loads(ok(segments(published, "explain", "new_customers", "s4", "--json")))
    assert (data["member"], data["published_member"], data["status"]) == (True, True, "bounced")
    first, second = data["groups"]
    assert (first["match"], first["held"], second["match"], second["held"]) == ("all", True, "any", True)
    assert [(f["kind"], f["held"]) for f in first["filters"]] == [("field", True), ("event", True)]
    assert first["filters"][0]["value"] == "created_at = 2026-11-24T22:00:00Z"  # +02:00 at ingest
    assert first["filters"][1]["value"].startswith("1 matching event ") and first["filters"][1]["observed"] == 1
    assert [f["held"] for f in second["filters"]] == [True, False]
    assert second["filters"][1]["value"] == "tags = [] (empty)" and second["filters"][1]["observed"] == []


def test_explain_non_member_text(published):
    out = ok(segments(published, "explain", "new_customers", "s3"))
    assert "is not in new_customers" in out
    assert "2 matching events (needs count = 1)" in out  # two purchases, exactly one needed
    assert "Group 1 (all of these must hold): does not hold" in out
    assert "s3 is NOT a member" in out


def test_explain_segment_filters_show_membership(published):
    data = json.loads(ok(segments(published, "explain", "ny_webinar_not_customers", "s1", "--json")))
    values = [(f["value"], f["held"]) for f in data["groups"][0]["filters"]]
    assert values == [("member of subscribers_in_new_york", True), ("member of webinar_attendees", True),
                      ("member of active_users", False)]
    assert data["member"] is False


def test_explain_agrees_with_the_published_membership(published):
    for key, members in AT_AS_OF2.items():
        for subscriber in ("s1", "s2", "s3", "s4", "s5"):
            result = explain(published, key, subscriber)
            assert result.member == (subscriber in members), (key, subscriber)
            assert result.published_member == result.member
            combine = all if result.match == "all" else any
            assert combine(g.held for g in result.groups) == result.member


def test_explain_errors(published):
    line = fails(segments(published, "explain", "new_customers", "s9"))
    assert line.startswith("error: unknown subscriber 's9'")
    assert "did you mean 'new_customers'" in fails(segments(published, "explain", "new_customer", "s1"))
    fails(segments(published, "explain", "new_customers"), code=2)


# --------------------------------------------------------------------------- diff


def test_diff_enter_leave_dependants_and_audiences(edited):
    path = edited.defs / "webinar_attendees.yaml"
    path.write_text(path.read_text().replace("[webinar-attendee, webinar-2026]", "[webinar-attendee]"))
    before = data_files(edited)
    data = json.loads(ok(segments(edited, "diff", "webinar_attendees", "--json")))
    assert data_files(edited) == before
    assert (data["status"], data["as_of"]) == ("changed", AS_OF2)
    assert data["change"] == {"segment": "webinar_attendees", "before": 3, "after": 2, "entered": 0, "exited": 1}
    assert data["exited_sample"] == [{"subscriber_id": "s5", "email": "eve@example.com"}]
    assert [(d["segment"], d["before"], d["after"]) for d in data["dependants"]] == [
        ("ny_webinar_not_customers", 1, 1)]
    # s5 was the only recipient; s2 (in NY, not active) is unsubscribed
    assert data["audiences"] == [{"audience": "nyc_meetup_invite", "name": "NYC meetup invitation", "before": 1,
                                  "after": 0, "added": 0, "removed": 1, "change": -1}]
    out = ok(segments(edited, "diff", "webinar_attendees"))
    assert "+0 would enter" in out and "-1 would leave" in out and "eve@example.com" in out


def test_diff_unchanged_new_and_deleted(edited):
    assert json.loads(ok(segments(edited, "diff", "active_users", "--json")))["status"] == "unchanged"
    (edited.defs / "everyone.yaml").write_text(
        "name: Everyone\ngroups:\n  - filters:\n      - {field: subscriber_id, op: is_set}\n")
    data = json.loads(ok(segments(edited, "diff", "everyone", "--json")))
    assert (data["status"], data["change"]["entered"], data["audiences"]) == ("new", 5, [])
    (edited.defs / "engaged_subscribers.yaml").unlink()
    data = json.loads(ok(segments(edited, "diff", "engaged_subscribers", "--json")))
    assert (data["status"], data["change"]["after"], data["change"]["exited"]) == ("deleted", 0, 2)


def test_diff_invalid_definition_prints_problems(edited):
    path = edited.defs / "active_users.yaml"
    path.write_text(path.read_text().replace("in_last_days: 30", "in_last_days: -3"))
    result = segments(edited, "diff", "active_users")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert re.match(rf"^error: {re.escape(str(path))}:\d+:\d+: .*-3", fails(result))


def test_diff_errors(published, tmp_path):
    assert "did you mean 'active_users'" in fails(segments(published, "diff", "active_user"))
    line = fails(segments(write_project(tmp_path), "diff", "active_users"))
    assert "segments run" in line


# --------------------------------------------------------------------------- the command line itself


@pytest.mark.parametrize("command", ["run", "validate", "list", "show", "compile", "preview", "explain", "diff",
                                     "new", "delete", "query", "demo"])
def test_every_command_has_help_with_an_example_and_the_roots(command):
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    assert "Example: segments " + command in result.stdout
    assert "--defs" in result.stdout and "--data" in result.stdout


def test_roots_may_come_before_the_command(published):
    result = runner.invoke(app, ["--defs", str(published.defs), "--data", str(published.data), "list", "--json"])
    assert {r["segment"] for r in json.loads(ok(result))} == set(AT_AS_OF2)


def test_usage_errors_are_one_line_with_exit_2_from_the_console_script(published):
    for args in (["compile"], ["list", "--bogus"], ["nosuch"], ["compile", "active_users", "--dialect", "x"]):
        proc = subprocess.run([str(SEGMENTS_BIN), *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("error: "), proc.stderr
    proc = subprocess.run([str(SEGMENTS_BIN), "show", "new_customer", "--defs", str(published.defs), "--data",
                           str(published.data)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == "error: unknown segment 'new_customer' — did you mean 'new_customers'?\n"
