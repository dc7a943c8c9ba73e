"""The published warehouse: relations, audience files, idempotency, run log, retention, lock, examples."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from pipelines.errors import UserError
from pipelines.publish.catalog import check_relation, open_warehouse
from pipelines.publish.lock import writer_lock
from pipelines.publish.relations import MACROS, RELATIONS
from pipelines.publish.state import current_state
from pipelines.run.params import RunParams
from pipelines.run.prepare import record_failure

try:  # tests/ on sys.path (no tests/__init__.py)
    from test_publish_support import (
        make_paths,
        make_project,
        publish,
        query,
        stage_args,
    )
except ModuleNotFoundError:  # tests/ is a package
    from tests.test_publish_support import (
        make_paths,
        make_project,
        publish,
        query,
        stage_args,
    )

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "sql" / "examples").glob("*.sql"))
SEGMENTS = ["engaged_subscribers", "subscribers_in_new_york", "webinar_attendees"]
AUDIENCES = {
    "nyc_meetup_invite": {"include": ("subscribers_in_new_york", "webinar_attendees"),
                          "exclude": ("engaged_subscribers",), "fields": ("email", "first_name", "city")},
    "vip_offer": {"include": ("engaged_subscribers",), "fields": ("loyalty_points", "tags", "created_at", "vip")},
}
T = [datetime(2026, 1, 1, 2), datetime(2026, 1, 8, 2), datetime(2026, 1, 15, 2)]
STATUSES = [
    {"u1": "active", "u2": "active", "u3": "unsubscribed", "u4": "active", "u5": "bounced", "u6": "active"},
    {"u1": "active", "u2": "complained", "u3": "active", "u4": "active", "u5": "active", "u6": "active"},
    {"u1": "active", "u2": "active", "u3": "active", "u4": "unsubscribed", "u5": "active", "u6": "active",
     "u7": "active"},
]
MEMBERS = [
    {"engaged_subscribers": ["u1", "u2"], "subscribers_in_new_york": ["u1", "u3", "u4"],
     "webinar_attendees": ["u4", "u5"]},
    {"engaged_subscribers": ["u1", "u3", "u5"], "subscribers_in_new_york": ["u1", "u3", "u4"],
     "webinar_attendees": ["u2", "u6"]},
    {"engaged_subscribers": ["u1", "u4", "u6", "u7"], "subscribers_in_new_york": ["u2", "u4", "u7"],
     "webinar_attendees": ["u2", "u5"]},
]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    from pipelines.lake.ingest import ingest_landing

    paths = make_paths(tmp_path_factory.mktemp("warehouse"))
    project = make_project(SEGMENTS, AUDIENCES)
    # The quarantine relation publishes the lake's quarantined rows.
    landing = paths.data / "landing" / "subscribers"
    landing.mkdir(parents=True)
    (landing / "subscribers_20260101T020000Z.csv").write_text(
        "subscriber_id,email,status\nx1,x1@example.com,active\nx9,x9@example.com,gone\n")
    ingest_landing(paths, project.catalog)
    for n, as_of in enumerate(T):
        publish(paths, project, as_of, MEMBERS[n], STATUSES[n], run_id=f"run{n + 1}")
    return paths


# The relations of docs/data-contract (Published tables) with their columns, to the letter.
CONTRACT = {
    "subscribers": ["subscriber_id", "email", "status"],  # + every standard and declared field, below
    "segments": ["segment", "name", "description", "definition_sha256", "members", "sql"],
    "segment_membership": ["segment", "subscriber_id"],
    "segment_membership_history": ["segment", "subscriber_id", "valid_from", "valid_to"],
    "membership_changes": ["run_id", "as_of", "segment", "subscriber_id", "change"],
    "segment_sizes": ["run_id", "as_of", "segment", "members", "entered", "exited"],
    "runs": ["run_id", "as_of", "snapshot", "started_at", "finished_at", "status"],
    "recipients": ["audience", "subscriber_id", "email", "group", "run_id"],  # + the audience's fields
    "suppressions": ["email", "reason", "source", "suppressed_at"],
    "quarantine": ["file", "row_number", "reason", "raw"],
}


def test_registry_contract_readme_and_warehouse_agree(warehouse):
    registry = {r.name: r for r in RELATIONS}
    for name, columns in CONTRACT.items():
        assert set(columns) <= set(registry[name].columns), name
    # The published catalog holds exactly the registry's views and macros...
    views = query(warehouse, "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY view_name")
    assert [v for (v,) in views] == sorted(registry)
    macros = query(warehouse, "SELECT DISTINCT function_name FROM duckdb_functions() "
                              "WHERE function_type IN ('macro', 'table_macro') AND NOT internal")
    assert sorted(m for (m,) in macros) == sorted(MACROS)
    # ...each with its registered columns (in order, unless the files add more).
    for relation in RELATIONS:
        names = [r[0] for r in query(warehouse, f"DESCRIBE {relation.name}")]
        if relation.more_columns:
            assert set(relation.columns) <= set(names), relation.name
        else:
            assert names == list(relation.columns), relation.name
    assert {"email", "first_name", "city", "loyalty_points", "tags", "created_at", "vip"} <= {
        r[0] for r in query(warehouse, "DESCRIBE recipients")}
    standard = ["subscriber_id", "email", "status", "first_name", "last_name", "signup_form", "city", "state",
                "country", "postal_code", "age", "created_at", "tags", "loyalty_points", "vip"]
    assert set(standard) <= {r[0] for r in query(warehouse, "DESCRIBE subscribers")}
    # The README's table of relations says what the registry says.
    readme = (ROOT / "README.md").read_text(encoding="utf-8").split("## Querying as an analyst")[1]
    rows = [line.split(" | ", 1) for line in readme.split("\n\n| relation |")[1].split("\n\n")[0].splitlines()[2:]]
    assert [(name.strip("|` "), holds.rstrip(" |")) for name, holds in rows] == [
        *((r.name, r.holds) for r in RELATIONS),
        ("segment_members_at(segment, ts)", "table macro: who was a member at `ts`")]


def test_a_view_without_its_registered_columns_is_refused():
    relation = next(r for r in RELATIONS if r.name == "segment_membership")
    with duckdb.connect() as con:
        con.execute("CREATE VIEW segment_membership AS SELECT 'a' AS segment")
        with pytest.raises(ValueError, match="segment_membership lacks column.s. subscriber_id"):
            check_relation(con, relation)


def test_the_subscribers_relation_is_typed_and_complete(warehouse):
    types = dict(query(warehouse, "SELECT column_name, column_type FROM (DESCRIBE subscribers)"))
    assert types["tags"] == "VARCHAR[]" and types["created_at"] == "TIMESTAMP" and types["age"] == "BIGINT"
    assert types["loyalty_points"] == "BIGINT" and types["vip"] == "BOOLEAN"
    assert query(warehouse, "SELECT file, row_number, raw FROM quarantine") == [
        ("subscribers_20260101T020000Z.csv", 2, "x9,x9@example.com,gone")]  # data row 2
    assert query(warehouse, "SELECT count(*) FROM subscribers") == [(7,)]


def test_segments_and_membership_of_the_latest_run(warehouse):
    assert query(warehouse, "SELECT segment, members, sql IS NOT NULL FROM segments ORDER BY segment") == [
        ("engaged_subscribers", 4, True), ("subscribers_in_new_york", 3, True), ("webinar_attendees", 2, True)]
    assert query(warehouse, "SELECT count(*) FROM segment_membership") == [(9,)]


def test_recipients_suppress_non_active_and_carry_only_asked_fields(warehouse):
    rows = query(warehouse, """SELECT audience, subscriber_id, first_name IS NOT NULL, loyalty_points IS NOT NULL
                               FROM recipients ORDER BY ALL""")
    # nyc_meetup_invite: (ny {u2,u4,u7} | webinar {u2,u5}) - engaged {u1,u4,u6,u7} = {u2,u5}; all active.
    # vip_offer: engaged {u1,u4,u6,u7} minus u4 (unsubscribed).
    assert rows == [
        ("nyc_meetup_invite", "u2", True, False), ("nyc_meetup_invite", "u5", True, False),
        ("vip_offer", "u1", False, True), ("vip_offer", "u6", False, True), ("vip_offer", "u7", False, True),
    ]
    assert query(warehouse, """SELECT count(*) FROM recipients r JOIN subscribers s USING (subscriber_id)
                               WHERE s.status <> 'active'""") == [(0,)]
    assert query(warehouse, "SELECT DISTINCT run_id FROM recipients") == [("run3",)]
    assert query(warehouse, "SELECT audience, recipients FROM audiences ORDER BY 1") == [
        ("nyc_meetup_invite", 2), ("vip_offer", 3)]


def test_audience_files_match_manifest_and_warehouse(warehouse):
    folder = warehouse.data / "audiences" / "vip_offer"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["run_id"] == "run3" and manifest["rows"] == 3 and manifest["as_of"] == "2026-01-15T02:00:00Z"
    for name, info in manifest["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == info["sha256"]
    table = pq.read_table(folder / "recipients.parquet")
    assert table.column_names == ["subscriber_id", "email", "loyalty_points", "tags", "created_at", "vip"]
    assert table.column("subscriber_id").to_pylist() == ["u1", "u6", "u7"]
    with open(folder / "recipients.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["subscriber_id"] for r in rows] == ["u1", "u6", "u7"]
    assert rows[0]["tags"] == "webinar|vip" and rows[1]["tags"] == ""
    assert rows[0]["created_at"] == "2025-01-01T12:30:00Z" and rows[0]["vip"] == "true"
    nyc = pq.read_table(warehouse.data / "audiences" / "nyc_meetup_invite" / "recipients.parquet")
    assert nyc.column_names == ["subscriber_id", "email", "first_name", "city"]


def test_removed_audience_loses_its_folder_but_not_foreign_files(tmp_path):
    paths = make_paths(tmp_path)
    statuses = {"a": "active"}
    publish(paths, make_project(["s"], {"one": {"include": ("s",)}, "two": {"include": ("s",)}}),
            T[0], {"s": ["a"]}, statuses)
    (paths.data / "audiences" / "two" / "notes.txt").write_text("mine")
    publish(paths, make_project(["s"], {"one": {"include": ("s",)}}), T[1], {"s": ["a"]}, statuses)
    assert sorted(os.listdir(paths.data / "audiences" / "two")) == ["notes.txt"]
    assert (paths.data / "audiences" / "one" / "manifest.json").exists()
    publish(paths, make_project(["s"], {}), T[2], {"s": ["a"]}, statuses)
    assert not (paths.data / "audiences" / "one").exists()


def _snapshot_all(paths) -> dict[str, list[tuple]]:
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        return {r.name: con.execute(f"SELECT * FROM {r.name} ORDER BY ALL").fetchall() for r in RELATIONS}


def _refresh(paths, as_of):
    """A whole run as `segments run` makes it (prepare decides "unchanged", not the publish)."""
    import dagster as dg

    from pipelines.runner import execute_refresh

    with dg.instance_for_test() as instance:
        return execute_refresh(paths, as_of=as_of, instance=instance)


def test_same_as_of_and_inputs_twice_changes_nothing(project_paths):
    paths = project_paths
    _refresh(paths, "2026-11-27T05:30:00Z")
    _refresh(paths, "2026-11-27T06:00:00Z")
    first = query(paths, "SELECT run_id FROM published_state")[0][0]
    before = _snapshot_all(paths)
    inode = paths.warehouse.stat().st_ino
    manifest = (paths.data / "audiences" / "nyc_meetup_invite" / "manifest.json").read_text()
    result = _refresh(paths, "2026-11-27T06:00:00Z")
    assert result.status == "unchanged" and query(paths, "SELECT run_id FROM published_state")[0][0] == first
    assert _snapshot_all(paths) == before
    assert paths.warehouse.stat().st_ino == inode
    assert (paths.data / "audiences" / "nyc_meetup_invite" / "manifest.json").read_text() == manifest
    for relation, keys in (("segment_membership_history", "segment, subscriber_id, valid_from"),
                           ("membership_changes", "run_id, segment, subscriber_id"),
                           ("segment_sizes", "run_id, segment")):
        assert query(paths, f"SELECT count(*) FROM (SELECT {keys} FROM {relation} GROUP BY ALL HAVING count(*) > 1)"
                     ) == [(0,)]


def test_unchanged_run_repairs_audience_files(project_paths):
    paths = project_paths
    _refresh(paths, "2026-11-27T06:00:00Z")
    folder = paths.data / "audiences" / "nyc_meetup_invite"
    (folder / "recipients.csv").write_text("tampered")
    assert _refresh(paths, "2026-11-27T06:00:00Z").status == "unchanged"
    manifest = json.loads((folder / "manifest.json").read_text())
    csv_bytes = (folder / "recipients.csv").read_bytes()
    assert hashlib.sha256(csv_bytes).hexdigest() == manifest["files"]["recipients.csv"]["sha256"]


def test_failed_runs_appear_in_runs_after_the_next_publish(tmp_path):
    paths = make_paths(tmp_path)
    project = make_project(["s"])
    publish(paths, project, T[0], {"s": ["a"]}, {"a": "active"}, run_id="ok1")
    record_failure(paths, RunParams(run_id="bad", as_of=T[1], started_at=datetime(2026, 1, 8, 2, 0, 5)),
                   UserError("snapshot dropped 80%", run_status="held"))
    assert [r[0] for r in query(paths, "SELECT run_id FROM runs")] == ["ok1"]  # published state untouched
    publish(paths, project, T[2], {"s": ["a"]}, {"a": "active"}, run_id="ok2")
    assert query(paths, "SELECT run_id, status, message FROM runs ORDER BY started_at") == [
        ("ok1", "success", None), ("bad", "held", "snapshot dropped 80%"), ("ok2", "success", None)]


def test_old_versions_and_crash_leftovers_are_pruned(tmp_path):
    paths = make_paths(tmp_path)
    project = make_project(["s"])
    publish(paths, project, T[0], {"s": ["a"]}, {"a": "active"})
    versions = paths.published / "versions"
    (versions / ".staging-deadbeef").mkdir()
    (versions / "000099-20260101T000000Z").mkdir()  # staged by a crashed run, never published
    (paths.data / ".warehouse.duckdb.000002-x.tmp").write_text("half a catalog")
    for n, as_of in enumerate([T[1], T[2], datetime(2026, 2, 1)]):
        publish(paths, project, as_of, {"s": ["a"] if n % 2 else ["b"]}, {"a": "active", "b": "active"},
                         keep_versions=2)
    names = sorted(os.listdir(versions))
    assert len(names) == 2 and names[-1] == current_state(paths).version
    assert not [n for n in os.listdir(paths.data) if n.startswith(".warehouse.duckdb.")]
    assert query(paths, "SELECT count(*) FROM segment_sizes") == [(4,)]


def test_a_second_writer_is_refused(tmp_path):
    paths = make_paths(tmp_path)
    code = (
        "import sys; from pipelines.publish.lock import writer_lock; from pipelines.errors import UserError\n"
        "from pipelines.core.settings import Paths; from pathlib import Path\n"
        f"p = Paths(defs=Path('.'), data=Path({str(paths.data)!r}))\n"
        "try:\n    with writer_lock(p): pass\nexcept UserError as e:\n    print(e); sys.exit(3)\n"
    )
    with writer_lock(paths, run_id="holder"):
        with writer_lock(paths):  # re-entrant in the holding thread
            pass
        child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert child.returncode == 3, child.stderr
        assert "another run is in progress" in child.stdout and "run holder" in child.stdout
        errors = []

        def other_thread():
            try:
                with writer_lock(paths):
                    pass
            except UserError as error:
                errors.append(str(error))

        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        assert errors and "another run is in progress" in errors[0]
    # Released: the next writer gets it (flock also conflicts between two opens in one process).
    with writer_lock(paths):
        pass


def test_open_warehouse_sees_the_new_state_while_an_old_connection_is_open(tmp_path):
    paths = make_paths(tmp_path)
    project = make_project(["s"])
    publish(paths, project, T[0], {"s": ["a"]}, {"a": "active", "b": "active"}, run_id="one")
    old = duckdb.connect(str(paths.warehouse), read_only=True)
    try:
        publish(paths, project, T[1], {"s": ["a", "b"]}, {"a": "active", "b": "active"}, run_id="two")
        assert old.execute("SELECT run_id FROM published_state").fetchall() == [("one",)]  # its snapshot
        with open_warehouse(paths) as con:
            assert con.execute("SELECT run_id, (SELECT count(*) FROM segment_membership) FROM published_state"
                               ).fetchall() == [("two", 2)]
        assert current_state(paths).run_id == "two"
    finally:
        old.close()


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_return_sensible_rows(warehouse, example):
    with duckdb.connect(str(warehouse.warehouse), read_only=True) as con:
        cursor = con.execute(example.read_text())
        columns = [d[0] for d in cursor.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    assert rows, f"{example.name} returned no rows"
    if example.stem == "segment_growth":
        assert [(r["members"], r["change_since_previous_run"]) for r in rows] == [(2, None), (3, 1), (4, 1)]
    elif example.stem == "entered_this_week":
        assert sorted(r["subscriber_id"] for r in rows) == ["u4", "u6", "u7"]
        assert all(r["still_member"] for r in rows)
    elif example.stem == "members_on_date":
        # one week before the latest run = exactly run2's as_of: run2's members
        assert [r["subscriber_id"] for r in rows] == ["u1", "u3", "u5"]
    elif example.stem == "segment_overlap":
        assert rows[0]["shared_members"] >= rows[-1]["shared_members"] > 0
        assert all(r["segment_a"] < r["segment_b"] for r in rows)
    elif example.stem == "audience_suppression":
        by_audience = {r["audience"]: r for r in rows}
        vip = by_audience["vip_offer"]
        assert (vip["picked_by_segments"], vip["suppressed_not_active"], vip["recipients"]) == (4, 1, 3)
        for r in rows:
            assert r["picked_by_segments"] - r["excluded"] - r["suppressed_not_active"] == r["recipients"]


def _stage_args(paths, project, run_id, as_of, members, statuses):
    return stage_args(paths, project, as_of, members, statuses, run_id=run_id, fingerprint=run_id)


def test_publish_refuses_stale_history(tmp_path):
    """(Recipients that break the suppression rule never reach the publish: the blocking
    `suppression` check stops the run first, test_audience_suppression.py. Staging and
    the swap are one step under the writer lock: no publish can come in between.)"""
    from pipelines.publish.warehouse import publish_version

    paths = make_paths(tmp_path)
    project = make_project(["s"], {"aud": {"include": ("s",)}})
    statuses = {"a": "active", "b": "unsubscribed"}
    publish(paths, project, T[0], {"s": ["a", "b"]}, statuses, run_id="one")
    before = current_state(paths)

    # History computed before another run published (it lacks that run's rows).
    stale = _stage_args(paths, project, "three", T[2], {"s": ["a"]}, statuses)
    publish(paths, project, T[1], {"s": ["b"]}, statuses, run_id="two")
    with pytest.raises(UserError, match="start the run again"):
        publish_version(paths, **stale)
    assert current_state(paths).run_id == "two" and current_state(paths) != before
