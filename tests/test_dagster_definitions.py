"""The Dagster side: what loads, what depends on what, and the landing sensor."""

import json
import os
import time

import dagster as dg
import pytest

from pipelines.definitions import defs
from pipelines.defs.automation import landing_sensor
from pipelines.defs.resources import SegmentsResource


def test_definitions_load_with_expected_graph():
    repo = defs.get_repository_def()
    graph = {
        key.to_user_string(): sorted(dep.to_user_string() for dep in deps)
        for key, deps in repo.asset_graph.asset_dep_graph["upstream"].items()
    }
    assert graph == {
        "landing_files": [],
        "lake_subscribers": ["landing_files"],
        "lake_events": ["landing_files"],
        "segment_membership": ["lake_events", "lake_subscribers"],
        "segment_history": ["segment_membership"],
        "audience_recipients": ["segment_membership"],
        "analyst_warehouse": ["audience_recipients", "segment_history"],
    }


def test_checks_schedules_and_sensor_are_defined():
    repo = defs.get_repository_def()
    checks = sorted(
        f"{key.asset_key.to_user_string()}:{key.name}" for key in repo.asset_graph.asset_check_keys
    )
    assert checks == [
        "audience_recipients:suppression",
        "lake_subscribers:quarantine_rate",
        "segment_membership:no_sudden_shrink",
        "segment_membership:unique_members",
    ]
    blocking = {
        spec.key.name for a in repo.asset_graph.assets_defs for spec in a.check_specs if spec.blocking
    }
    assert {"suppression", "unique_members", "no_sudden_shrink"} <= blocking
    schedules = {s.name: s.cron_schedule for s in repo.schedule_defs}
    assert schedules == {"nightly_full_refresh": "0 2 * * *", "hourly_refresh": "0 0,1,3-23 * * *"}
    assert sorted(s.name for s in repo.sensor_defs) == ["alert_failed_refresh", "landing_sensor", "record_failed_refresh"]
    # Failures are recorded and alerted without anyone turning a switch on.
    running = {s.name for s in repo.sensor_defs if s.default_status == dg.DefaultSensorStatus.RUNNING}
    assert running == {"record_failed_refresh", "alert_failed_refresh"}
    assert repo.get_job("refresh") is not None


def test_schedules_pass_their_tick_as_as_of():
    context = dg.build_schedule_context(scheduled_execution_time=__import__("datetime").datetime(2026, 11, 27, 2))
    request = defs.get_schedule_def("nightly_full_refresh")(context)
    config = request.run_config["ops"]["ingest"]["config"]
    assert config == {"as_of": "2026-11-27T02:00:00Z", "full": True}
    assert request.tags["segments/as_of"] == "2026-11-27T02:00:00Z"


def _sensor_tick(cursor, data_dir: str = ""):
    """(the run request or skip reason, the new cursor)."""
    context = dg.build_sensor_context(cursor=cursor, resources={"segments": SegmentsResource(data_dir=data_dir)})
    result = landing_sensor(context)
    if isinstance(result, dg.SensorResult):
        [request] = result.run_requests
        return request, result.cursor
    return result, context.cursor


def test_landing_sensor_observes_the_landing_files(tmp_path, monkeypatch):
    """Each tick that finds new files records an observation of `landing_files`, and
    its run carries the as_of as a tag."""
    monkeypatch.setenv("SEGMENTS_DATA", str(tmp_path))
    landing = tmp_path / "landing" / "subscribers"
    landing.mkdir(parents=True)
    (landing / "subscribers_20261127T020000Z.csv").write_text("subscriber_id,email,status\n")
    context = dg.build_sensor_context(resources={"segments": SegmentsResource()})
    result = landing_sensor(context)
    [observation] = result.asset_events
    assert observation.asset_key == dg.AssetKey("landing_files")
    assert observation.metadata["files"].value == 1 and observation.metadata["new_files"].value == 1
    assert observation.metadata["files/subscribers"].value == 1 and observation.metadata["files/events"].value == 0
    assert observation.metadata["bytes"].value == len("subscriber_id,email,status\n")
    [request] = result.run_requests
    assert request.tags["segments/as_of"] == request.run_config["ops"]["ingest"]["config"]["as_of"]


def test_landing_sensor_watches_the_resources_data_folder_as_ingest_reads_it(tmp_path, monkeypatch):
    """The folder comes from the `segments` resource (a deployment sets `data_dir`),
    and only files ingest reads count: not sub-folders, not dot-files."""
    monkeypatch.delenv("SEGMENTS_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # ./data here is empty
    data = tmp_path / "deployed"
    landing = data / "landing" / "events"
    (landing / ".partial").mkdir(parents=True)
    (landing / ".partial" / "events_20261127T030000Z.csv").write_text("event_id\n")
    (landing / ".events_20261127T040000Z.csv.swp").write_text("")
    result, cursor = _sensor_tick(None, str(data))
    assert isinstance(result, dg.SkipReason)
    (landing / "events_20261127T030000Z.csv").write_text("event_id\n")
    result, cursor = _sensor_tick(cursor, str(data))
    assert isinstance(result, dg.RunRequest) and result.tags["segments/new_files"] == "1"
    assert list(json.loads(cursor)) == ["events/events_20261127T030000Z.csv"]


def test_landing_sensor_one_run_per_new_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGMENTS_DATA", str(tmp_path))
    landing = tmp_path / "landing" / "subscribers"
    landing.mkdir(parents=True)

    result, cursor = _sensor_tick(None)
    assert isinstance(result, dg.SkipReason)

    (landing / "subscribers_20261127T020000Z.csv").write_text("subscriber_id,email,status\n1,a@x.io,active\n")
    result, cursor = _sensor_tick(cursor)
    assert isinstance(result, dg.RunRequest)
    assert result.run_key.startswith("landing-")
    assert result.run_config["ops"]["ingest"]["config"]["as_of"].endswith("Z")

    # The same file again: no run.
    result, cursor_after = _sensor_tick(cursor)
    assert isinstance(result, dg.SkipReason)
    assert json.loads(cursor_after) == json.loads(cursor)

    # A second new file: exactly one more run, with a different key.
    (tmp_path / "landing" / "events").mkdir()
    (tmp_path / "landing" / "events" / "events_20261127T030000Z.csv").write_text("event_id\n")
    second, _ = _sensor_tick(cursor)
    assert isinstance(second, dg.RunRequest)
    assert second.run_key != result.run_key if isinstance(result, dg.RunRequest) else True


def test_landing_sensor_sees_a_rewritten_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGMENTS_DATA", str(tmp_path))
    landing = tmp_path / "landing" / "subscribers"
    landing.mkdir(parents=True)
    target = landing / "subscribers_20261127T020000Z.csv"
    target.write_text("subscriber_id,email,status\n")
    first, cursor = _sensor_tick(None)
    assert isinstance(first, dg.RunRequest)
    time.sleep(0.01)
    target.write_text("subscriber_id,email,status\n2,b@x.io,active\n")
    os.utime(target, ns=(time.time_ns(), time.time_ns()))
    again, _ = _sensor_tick(cursor)
    assert isinstance(again, dg.RunRequest)
    assert again.run_key != first.run_key


@pytest.mark.parametrize("name", ["refresh"])
def test_job_selects_lake_to_warehouse(name):
    job = defs.resolve_job_def(name)
    keys = sorted(k.to_user_string() for k in job.asset_layer.executable_asset_keys)
    assert keys == [
        "analyst_warehouse", "audience_recipients", "lake_events", "lake_subscribers",
        "segment_history", "segment_membership",
    ]


def test_dagster_cli_validates_definitions(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    dagster = Path(sys.executable).parent / "dagster"
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    (tmp_path / "dagster.yaml").write_text((repo / "dagster.yaml").read_text())
    result = subprocess.run([str(dagster), "definitions", "validate"], cwd=repo, env=env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Validation successful" in result.stderr + result.stdout


def _refresh_job():
    return defs.resolve_job_def("refresh")


def test_a_launched_refresh_runs_every_step_in_one_process(tmp_path, monkeypatch):
    """A run launched by a schedule, the sensor or the UI goes through the job's own
    executor (execute_in_process does not): one process for every step, not one per step."""
    from conftest import AS_OF, write_project

    paths = write_project(tmp_path)
    monkeypatch.setenv("SEGMENTS_DEFS", str(paths.defs))
    monkeypatch.setenv("SEGMENTS_DATA", str(paths.data))
    (tmp_path / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        result = dg.execute_job(dg.reconstructable(_refresh_job), instance=instance,
                                run_config={"ops": {"ingest": {"config": {"as_of": AS_OF}}}})
        assert result.success
        starts = [e for e in result.all_events if e.event_type_value == "STEP_START"]
        assert [e.step_key for e in starts] == ["ingest", "segments"]
        assert {e.pid for e in starts} == {os.getpid()}
