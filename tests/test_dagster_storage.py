"""The Dagster instance `segments run` uses (dagster.yaml -> pipelines/dagster_storage.py):
runs land in Dagster's SQLite run history through a few pooled connections
instead of a connection (and ~4 fsyncs) per event, and the files survive a
killed process."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import dagster as dg
import pytest
from conftest import AS_OF, REPO, write_project
from dagster._core.events.log import EventLogEntry
from sqlalchemy import event
from sqlalchemy.pool import Pool

from pipelines.dagster_run import dagster_instance
from pipelines.dagster_storage import SqliteStorage
from pipelines.runner import execute_refresh


def _sqlite_files(home):
    return sorted(p for p in home.rglob("*.db"))


def test_a_run_writes_the_stock_history_files_through_a_few_pooled_connections(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    paths = write_project(tmp_path)
    connects: list[str] = []

    def count(dbapi_connection, _record):
        if isinstance(dbapi_connection, sqlite3.Connection):
            connects.append(dbapi_connection.execute("PRAGMA database_list").fetchone()[2])

    instance = dagster_instance(paths)  # copies the repo's dagster.yaml into the new home
    event.listen(Pool, "connect", count)
    try:
        summary = execute_refresh(paths, as_of=AS_OF, instance=instance)
    finally:
        event.remove(Pool, "connect", count)

    # The stock layout, so the UI (and history written before) reads the same files.
    assert (home / "history" / "runs.db").is_file()
    assert (home / "history" / "runs" / f"{summary.ctx.params.run_id}.db").is_file()
    # Each event was a connection (or three) with the stock storage: now a few, kept open.
    assert len(connects) <= 6, connects
    assert isinstance(instance.get_ref().storage_data.rehydrate(as_type=SqliteStorage), SqliteStorage)
    with instance.event_log_storage.run_connection(summary.ctx.params.run_id) as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"

    # A fresh instance on the same home (the UI's) sees the run, its status and its log.
    with dg.DagsterInstance.get() as fresh:
        run = fresh.get_run_by_id(summary.ctx.params.run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        events = fresh.all_logs(summary.ctx.params.run_id)
        types = {e.dagster_event.event_type for e in events if e.dagster_event}
        assert {dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.ASSET_MATERIALIZATION} <= types


KILLED_RUN = textwrap.dedent("""
    import os, signal
    import dagster as dg

    @dg.op
    def step(context):
        context.log.info("logged before the kill")

    @dg.job
    def tiny():
        step()

    result = tiny.execute_in_process(instance=dg.DagsterInstance.get())
    print(result.run_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint: what the WAL holds is all there is
""")


@pytest.mark.slow  # SIGKILLs a child process
def test_a_killed_process_loses_no_committed_run_and_leaves_the_files_sound(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(REPO)}
    child = subprocess.run([sys.executable, "-c", KILLED_RUN], env=env, capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr
    run_id = child.stdout.strip()
    assert (home / "history" / "runs" / f"{run_id}.db-wal").is_file()  # killed before any checkpoint

    for db in _sqlite_files(home):
        with sqlite3.connect(db) as con:
            assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",), db
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        messages = [e.user_message for e in instance.all_logs(run_id)]
        assert "logged before the kill" in messages


def test_the_ui_follows_a_run_whose_events_are_still_in_the_wal(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))

    def entry(message: str) -> EventLogEntry:
        return EventLogEntry(error_info=None, level="INFO", user_message=message, run_id="r1",
                             timestamp=time.time(), step_key=None, job_name="tiny", dagster_event=None)

    seen: list[str] = []

    def follow(event, _cursor):
        seen.append(event.user_message)

    with dg.DagsterInstance.get() as cli, dg.DagsterInstance.get() as ui:
        cli.event_log_storage.store_event(entry("first"))
        ui.event_log_storage.watch("r1", None, follow)
        cli.event_log_storage.store_event(entry("second"))  # into the WAL: the .db file is not touched
        deadline = time.monotonic() + 10
        while "second" not in seen and time.monotonic() < deadline:
            time.sleep(0.05)
        ui.event_log_storage.end_watch("r1", follow)
    assert "second" in seen
