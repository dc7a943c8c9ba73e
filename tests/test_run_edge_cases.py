"""Runs on awkward inputs, end to end through the refresh job (real files, real
DuckDB, real Dagster): empty snapshots, a snapshot that repeats an earlier
one, the drop rule counted by subscriber, two runs at once, a moved data folder."""

from __future__ import annotations

import threading
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from conftest import write_project
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.core.clock import format_ts
from pipelines.errors import UserError
from pipelines.runner import execute_refresh

HEADER = "subscriber_id,email,status,state\n"


def snapshot(paths, stamp: str, rows: list[tuple[str, str]]) -> None:
    """A subscribers snapshot at `stamp` (YYYYMMDD), rows of (id, state)."""
    body = "".join(f"{sid},{sid}@example.com,active,{state}\n" for sid, state in rows)
    (Path(paths.data) / "landing" / "subscribers" / f"subs_{stamp}T000000Z.csv").write_text(HEADER + body)


def run(paths, day: str, **options):
    with dg.instance_for_test() as instance:
        return execute_refresh(paths, as_of=f"{day}T12:00:00Z", instance=instance, **options)


def query(paths, sql: str) -> list[tuple]:
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


def members(paths, segment: str = "subscribers_in_new_york") -> set[str]:
    return {r[0] for r in query(paths, f"SELECT subscriber_id FROM segment_membership WHERE segment = '{segment}'")}


@pytest.fixture
def paths(tmp_path):
    paths = write_project(tmp_path, subscribers=HEADER + "s0,s0@example.com,active,CA\n",
                          snapshot_name="subs_20261101T000000Z.csv")
    return paths


def test_an_empty_snapshot_before_and_after_people(paths):
    """History works from an empty snapshot, and back to one (forced past the drop rule)."""
    snapshot(paths, "20261101", [])  # in place of the fixture's: the first run sees nobody
    run(paths, "2026-11-01")
    assert members(paths) == set()
    snapshot(paths, "20261102", [("s1", "NY"), ("s2", "NY"), ("s3", "CA")])
    run(paths, "2026-11-02")
    assert members(paths) == {"s1", "s2"}
    snapshot(paths, "20261103", [])
    with pytest.raises(UserError, match="lacks 3 of the 3 subscribers"):
        run(paths, "2026-11-03")
    run(paths, "2026-11-03", force=True)
    assert members(paths) == set()
    snapshot(paths, "20261104", [("s2", "NY")])
    run(paths, "2026-11-04", force=True)
    assert members(paths) == {"s2"}
    history = query(paths, "SELECT subscriber_id, valid_from::DATE::VARCHAR, valid_to::DATE::VARCHAR "
                           "FROM segment_membership_history WHERE segment = 'subscribers_in_new_york' ORDER BY ALL")
    assert history == [("s1", "2026-11-02", "2026-11-03"), ("s2", "2026-11-02", "2026-11-03"),
                       ("s2", "2026-11-04", None)]


def test_a_snapshot_that_repeats_an_earlier_one_is_the_latest(paths):
    """A, then B, then A's bytes again: the third run evaluates A's rows."""
    snapshot(paths, "20261102", [("s1", "NY"), ("s2", "NY")])
    run(paths, "2026-11-02")
    snapshot(paths, "20261103", [("s1", "CA"), ("s2", "NY")])
    run(paths, "2026-11-03")
    assert members(paths) == {"s2"}
    landing = Path(paths.data) / "landing" / "subscribers"
    (landing / "subs_20261104T000000Z.csv").write_bytes((landing / "subs_20261102T000000Z.csv").read_bytes())
    run(paths, "2026-11-04")
    assert members(paths) == {"s1", "s2"}
    assert query(paths, "SELECT snapshot FROM runs WHERE status = 'success' ORDER BY as_of DESC LIMIT 1") == [
        ("subs_20261104T000000Z.csv",)]


@pytest.mark.parametrize(("rows", "held"), [
    ([("s1", "NY"), ("s2", "NY")], False),  # exactly half of the four kept
    ([("s1", "NY")], True),  # three of four gone
    ([("n1", "NY"), ("n2", "NY"), ("n3", "NY"), ("s1", "NY")], True),  # as many rows, but three of four replaced
    ([("s1", "NY"), ("s2", "NY"), ("n1", "NY"), ("n2", "NY"), ("n3", "NY")], False),  # two gone, three new
])
def test_the_drop_rule_counts_subscribers_not_rows(paths, rows, held):
    snapshot(paths, "20261102", [("s1", "NY"), ("s2", "NY"), ("s3", "NY"), ("s4", "NY")])
    run(paths, "2026-11-02")
    snapshot(paths, "20261103", rows)
    if held:
        with pytest.raises(UserError, match="held back .* `segments run --force`"):
            run(paths, "2026-11-03")
        assert members(paths) == {"s1", "s2", "s3", "s4"}  # nothing published
        run(paths, "2026-11-03", force=True)
        # the held run shows in `runs` from the next publish on
        assert [r[0] for r in query(paths, "SELECT status FROM runs ORDER BY started_at")] == [
            "success", "held", "success"]
    else:
        run(paths, "2026-11-03")
    assert members(paths) == {sid for sid, _ in rows}


def test_a_second_run_on_the_same_folder_stops_at_once(paths, monkeypatch):
    """While a run holds the folder, another gets one clear line and changes nothing."""
    from pipelines.run import prepare

    snapshot(paths, "20261102", [("s1", "NY")])
    entered, release = threading.Event(), threading.Event()
    real_resync = prepare.resync_audience_files

    def slow_prepare(*args, **kwargs):
        entered.set()
        release.wait(60)
        return real_resync(*args, **kwargs)

    monkeypatch.setattr(prepare, "resync_audience_files", slow_prepare)
    outcome = {}
    first = threading.Thread(target=lambda: outcome.setdefault("first", run(paths, "2026-11-02")))
    first.start()
    try:
        assert entered.wait(60)
        with pytest.raises(UserError, match="another run is in progress"):
            run(paths, "2026-11-02")
    finally:
        release.set()
        first.join(120)
    assert outcome["first"].status == "published"
    assert members(paths) == {"s1"}


def test_data_or_defs_given_as_a_file_is_one_clear_line(paths, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    for option in ("--data", "--defs"):
        args = ["run", "--data", str(paths.data), "--defs", str(paths.defs)]
        args[args.index(option) + 1] = str(afile)
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert result.stderr.strip() == f"error: {option} {afile} is a file, not a folder"


def test_a_moved_data_folder_is_relinked_by_the_next_command(paths, tmp_path):
    """The warehouse's views read files by absolute path. After the data folder is
    moved (or copied), the next `segments` command points them at the new place;
    the copy left behind keeps working on its own files."""
    import shutil

    from pipelines.core.settings import Paths

    snapshot(paths, "20261102", [("s1", "NY"), ("s2", "CA")])
    run(paths, "2026-11-02")
    moved = Paths(defs=paths.defs, data=tmp_path / "elsewhere" / "data")
    shutil.copytree(paths.data, tmp_path / "copy")
    shutil.move(str(paths.data), str(moved.data))
    result = CliRunner().invoke(app, ["query", "--format", "csv", "--defs", str(moved.defs), "--data",
                                      str(moved.data), "SELECT (SELECT count(*) FROM segment_membership), "
                                      "(SELECT count(*) FROM events), (SELECT count(*) FROM subscribers)"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == f"{len(query(moved, 'SELECT * FROM segment_membership'))},6,2"
    with duckdb.connect(str(moved.warehouse), read_only=True) as con:  # an analyst's plain connection
        assert con.execute("SELECT count(*) FROM membership_changes").fetchone()[0] > 0
    assert members(moved) == {"s1"}
    snapshot(moved, "20261103", [("s1", "NY"), ("s2", "NY")])
    run(moved, "2026-11-03")
    assert members(moved) == {"s1", "s2"}
    copy = Paths(defs=paths.defs, data=tmp_path / "copy")
    run(copy, "2026-11-02")  # nothing new: relinks the copy to its own files, publishes nothing
    assert members(copy) == {"s1"}
    assert str(copy.data.resolve()) in query(copy, "SELECT sql FROM duckdb_views() WHERE view_name = 'events'")[0][0]


def test_demo_after_a_later_run_shows_the_published_state(tmp_path):
    """The demo's clock is fixed; once a later run published, running the demo
    again changes nothing and exits 0 (history only moves forward)."""
    import shutil

    from conftest import REPO

    from pipelines.core.settings import Paths

    defs, data = tmp_path / "segment_defs", tmp_path / "data"
    shutil.copytree(REPO / "segment_defs", defs)
    paths = Paths(defs=defs, data=data)
    demo = ["demo", "--subscribers", "300", "--defs", str(defs), "--data", str(data)]
    assert CliRunner().invoke(app, demo).exit_code == 0
    later = CliRunner().invoke(app, ["run", "--as-of", "2026-11-28T06:00:00Z", "--defs", str(defs), "--data",
                                     str(data)])
    assert later.exit_code == 0, later.output
    runs = query(paths, "SELECT * FROM runs")
    again = CliRunner().invoke(app, demo)
    assert again.exit_code == 0, again.output
    assert "already has runs up to 2026-11-28T06:00:00Z" in again.stdout
    assert query(paths, "SELECT * FROM runs") == runs


def test_a_killed_command_run_does_not_block_the_next_one(paths):
    """`segments run` executes in-process: killed mid-publish, its run stays STARTED in
    Dagster holding the publish pool's one slot. The next run marks it failed and
    frees the slot, instead of waiting for it forever."""
    import socket
    import subprocess

    from pipelines.dagster_run import COMMAND_HOST_TAG, COMMAND_PID_TAG

    snapshot(paths, "20261102", [("s1", "NY")])
    dead = subprocess.Popen(["true"])
    dead.wait()
    overrides = {"concurrency": {"pools": {"default_limit": 1}}}
    with dg.instance_for_test(overrides=overrides) as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots("warehouse_publish", 1)
        instance.add_run(dg.DagsterRun(job_name="refresh", run_id="killed-run", status=dg.DagsterRunStatus.STARTED,
                                       tags={COMMAND_HOST_TAG: socket.gethostname(), COMMAND_PID_TAG: str(dead.pid)}))
        assert storage.claim_concurrency_slot("warehouse_publish", "killed-run", "analyst_warehouse").is_claimed
        outcome = {}
        worker = threading.Thread(target=lambda: outcome.setdefault(
            "summary", execute_refresh(paths, as_of="2026-11-02T12:00:00Z", instance=instance)), daemon=True)
        worker.start()
        worker.join(180)
        assert outcome.get("summary") is not None and outcome["summary"].status == "published"
        assert instance.get_run_by_id("killed-run").status == dg.DagsterRunStatus.FAILURE
    assert members(paths) == {"s1"}


def test_a_run_keeps_the_workspaces_of_runs_still_in_progress(paths):
    """Starting a run removes old runs' scratch workspaces, but not those of runs
    Dagster still has in progress (the ingest asset passes their ids)."""
    from datetime import datetime

    from pipelines.run.params import RunParams
    from pipelines.run.prepare import prepare

    snapshot(paths, "20261102", [("s1", "NY")])
    work = Path(paths.data) / "work"
    for run_id in ("finished", "scheduled-in-progress"):
        (work / run_id).mkdir(parents=True)
    params = RunParams(run_id="now", as_of=datetime(2026, 11, 2, 12), started_at=datetime(2026, 11, 2, 12))
    prepare(paths, params, in_progress=["scheduled-in-progress"])
    assert sorted(p.name for p in work.iterdir()) == ["now", "scheduled-in-progress"]


def test_quarantine_rate_is_the_worst_new_files_share(paths):
    """An events export with most rows bad fails the (warning) check, even beside
    a larger snapshot with every row good."""
    from pipelines.definitions import defs
    from pipelines.defs.resources import SegmentsResource

    snapshot(paths, "20261102", [(f"s{i}", "NY") for i in range(40)])
    bad = "".join(f"b{i},,purchase,2026-11-01T10:00:00Z,1,,\n" for i in range(6))  # no subscriber_id
    good = "".join(f"g{i},s1,purchase,2026-11-01T10:00:00Z,1,,\n" for i in range(4))
    (Path(paths.data) / "landing" / "events" / "more_20261102T000000Z.csv").write_text(
        "event_id,subscriber_id,event,occurred_at,amount,product,campaign\n" + bad + good)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("refresh").execute_in_process(
            instance=instance, raise_on_error=False,
            run_config={"ops": {"ingest": {"config": {"as_of": "2026-11-02T12:00:00Z"}}}},
            resources={"segments": SegmentsResource(defs_dir=str(paths.defs), data_dir=str(paths.data))})
    assert result.success  # a warning, not a block
    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == "quarantine_rate"]
    assert not check.passed
    assert check.metadata["worst_file"].value == "more_20261102T000000Z.csv"
    assert check.metadata["rate"].value == pytest.approx(0.6)


def test_a_scheduled_run_that_fails_after_ingest_shows_in_runs(paths, monkeypatch):
    """Runs launched by Dagster (schedules, the sensor) are recorded when they fail
    after ingest, by the `record_failed_refresh` run-failure sensor."""
    from pipelines.definitions import defs
    from pipelines.defs.automation import record_failed_refresh
    from pipelines.defs.resources import SegmentsResource
    from pipelines.run import execute

    snapshot(paths, "20261102", [("s1", "NY")])
    resource = SegmentsResource(defs_dir=str(paths.defs), data_dir=str(paths.data))
    job = defs.resolve_job_def("refresh")

    def broken_history(*args, **kwargs):
        raise UserError("the disk is full")

    with dg.instance_for_test() as instance:
        monkeypatch.setattr(execute, "extend_history", broken_history)
        failed = job.execute_in_process(
            instance=instance, raise_on_error=False, resources={"segments": resource},
            run_config={"ops": {"ingest": {"config": {"as_of": "2026-11-02T12:00:00Z"}}}})
        assert not failed.success
        monkeypatch.undo()
        [event] = [e for e in failed.all_events if e.event_type_value == "PIPELINE_FAILURE"]
        context = dg.build_run_status_sensor_context(
            sensor_name="record_failed_refresh", dagster_event=event, dagster_instance=instance,
            dagster_run=instance.get_run_by_id(failed.run_id), resources={"segments": resource},
        ).for_run_failure()
        record_failed_refresh(context)
        run(paths, "2026-11-02")  # the next publish brings the failure into `runs`
    statuses = dict(query(paths, "SELECT run_id, status FROM runs"))
    assert statuses[failed.run_id] == "failed" and sorted(statuses.values()) == ["failed", "success"]


def test_a_scheduled_tick_overtaken_by_a_later_run_does_nothing(paths):
    """The sensor's run (as_of = when it fired) can reach the queue before the tick
    of an earlier schedule time: that tick then ends quietly, publishing nothing;
    a command-line run at an earlier as_of is still refused."""
    from pipelines.definitions import defs
    from pipelines.defs.resources import SegmentsResource

    snapshot(paths, "20261102", [("s1", "NY")])
    run(paths, "2026-11-02")  # as_of 12:00
    resource = SegmentsResource(defs_dir=str(paths.defs), data_dir=str(paths.data))
    versions_before = sorted(p.name for p in (Path(paths.data) / "published" / "versions").iterdir())
    with dg.instance_for_test() as instance:
        tick = defs.resolve_job_def("refresh").execute_in_process(
            instance=instance, raise_on_error=False, resources={"segments": resource},
            tags={"segments/trigger": "hourly"},
            run_config={"ops": {"ingest": {"config": {"as_of": "2026-11-02T11:00:00Z"}}}})
    assert tick.success
    assert sorted(p.name for p in (Path(paths.data) / "published" / "versions").iterdir()) == versions_before
    with pytest.raises(UserError, match="history only moves forward"), dg.instance_for_test() as instance:
        execute_refresh(paths, as_of="2026-11-02T11:00:00Z", instance=instance)


def refresh_job_for_reexecution():
    """The refresh job, for `dg.reconstructable` (re-execution rebuilds the job by name)."""
    from pipelines.definitions import defs

    return defs.resolve_job_def("refresh")


def test_reexecution_from_failure_finishes_the_run(paths, monkeypatch):
    """Dagster's "re-execute from failure" runs only the failed steps, under a new
    run id: they find the workspace the first attempt's steps left."""
    from pipelines.run import execute

    snapshot(paths, "20261102", [("s1", "NY")])
    monkeypatch.setenv("SEGMENTS_DEFS", str(paths.defs))
    monkeypatch.setenv("SEGMENTS_DATA", str(paths.data))
    config = {"ops": {"ingest": {"config": {"as_of": "2026-11-02T12:00:00Z"}}}}

    def broken_publish(*args, **kwargs):
        raise UserError("the disk is full")

    with dg.instance_for_test() as instance:
        monkeypatch.setattr(execute, "publish_version", broken_publish)
        first = dg.execute_job(dg.reconstructable(refresh_job_for_reexecution), instance=instance,
                               run_config=config, raise_on_error=False)
        assert not first.success and not Path(paths.warehouse).exists()
        monkeypatch.undo()
        monkeypatch.setenv("SEGMENTS_DEFS", str(paths.defs))
        monkeypatch.setenv("SEGMENTS_DATA", str(paths.data))
        again = dg.execute_job(dg.reconstructable(refresh_job_for_reexecution), instance=instance, run_config=config,
                               raise_on_error=False,
                               reexecution_options=dg.ReexecutionOptions.from_failure(first.run_id, instance))
        assert again.success
        assert "ingest" not in {e.step_key for e in again.all_events if e.event_type_value == "STEP_START"}
    assert members(paths) == {"s1"}
    assert query(paths, "SELECT run_id, status FROM runs") == [(first.run_id, "success")]


def test_a_sub_second_as_of_is_kept_to_the_microsecond(paths):
    """Windows are computed from the run's as_of as given: an event half a second
    before an as_of 0.9 s past the second counts."""
    snapshot(paths, "20261102", [("s1", "NY"), ("s2", "NY")])
    (Path(paths.data) / "landing" / "events" / "late_20261102T000000Z.csv").write_text(
        "event_id,subscriber_id,event,occurred_at\nx1,s1,purchase,2026-11-02T12:00:00.5Z\n")
    with dg.instance_for_test() as instance:
        summary = execute_refresh(paths, as_of="2026-11-02T12:00:00.900000Z", instance=instance)
    assert format_ts(summary.ctx.params.as_of) == "2026-11-02T12:00:00.900000Z"
    assert query(paths, "SELECT as_of::VARCHAR FROM runs") == [("2026-11-02 12:00:00.9",)]
    assert members(paths, "active_users") == {"s1"}  # a purchase in the last 30 days, 0.4 s before as_of
