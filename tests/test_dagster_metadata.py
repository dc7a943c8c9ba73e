"""What Dagster records about a run, read back through Dagster's own API: numeric
per-segment and per-audience metadata (what the asset pages plot), column schemas,
the run's as_of, observations (not materializations) for runs that change nothing,
and the failure alert posted to a webhook."""

from __future__ import annotations

import json
import socket
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from conftest import AS_OF, SUBSCRIBERS_CSV

from pipelines.errors import UserError
from pipelines.runner import execute_refresh

SECOND_AS_OF = "2026-11-28T06:00:00Z"
JOB_ASSETS = ["lake_subscribers", "lake_events", "segment_membership", "segment_history", "audience_recipients",
              "analyst_warehouse"]


def _second_snapshot(paths) -> None:
    """s3 moves to New York (enters subscribers_in_new_york), s2 leaves it."""
    body = SUBSCRIBERS_CSV.replace("s3,cy@example.com,active,Cy,Boston,MA", "s3,cy@example.com,active,Cy,Boston,NY")
    body = body.replace("Bob,Buffalo,ny", "Bob,Buffalo,CA")
    (Path(paths.data) / "landing" / "subscribers" / "subscribers_20261128T050000Z.csv").write_text(body)


def _query(paths, sql: str) -> list[tuple]:
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


def _materializations(instance, key: str) -> list:
    """Every materialization of `key`, oldest first."""
    result = instance.fetch_materializations(dg.AssetKey(key), limit=100, ascending=True)
    return [record.asset_materialization for record in result.records]


def _latest(instance, key: str):
    event = instance.get_latest_materialization_event(dg.AssetKey(key))
    return event.run_id, event.asset_materialization.metadata


def test_per_segment_metadata_is_numeric_and_read_back_after_two_runs(project_paths):
    paths = project_paths
    with dg.instance_for_test() as instance:
        first = execute_refresh(paths, as_of=AS_OF, instance=instance)
        _second_snapshot(paths)
        second = execute_refresh(paths, as_of=SECOND_AS_OF, instance=instance)
        assert first.status == second.status == "published"

        run_id, membership = _latest(instance, "segment_membership")
        assert run_id == second.ctx.params.run_id
        published = dict(_query(paths, "SELECT segment, members FROM segments"))
        assert {k.removeprefix("members/"): v.value for k, v in membership.items() if k.startswith("members/")} \
            == published
        assert membership["members/subscribers_in_new_york"].value == 3  # s1, s3, s4
        assert isinstance(membership["members/subscribers_in_new_york"], dg.IntMetadataValue)

        # Both runs' values are in the event log: a plot has two points per segment.
        history = _materializations(instance, "segment_history")
        assert [m.metadata["entered/subscribers_in_new_york"].value for m in history] == [3, 1]
        assert [m.metadata["exited/subscribers_in_new_york"].value for m in history] == [0, 1]
        sizes = _query(paths, "SELECT segment, entered, exited FROM segment_sizes WHERE run_id = "
                              f"'{second.ctx.params.run_id}'")
        for segment, entered, exited in sizes:
            assert history[-1].metadata[f"entered/{segment}"].value == entered
            assert history[-1].metadata[f"exited/{segment}"].value == exited

        _, recipients = _latest(instance, "audience_recipients")
        counts = dict(_query(paths, "SELECT audience, count(*) FROM recipients GROUP BY audience"))
        columns = [r[0] for r in _query(paths, "SELECT column_name FROM (DESCRIBE recipients)")]
        holdout = dict(_query(paths, """SELECT audience, count(*) FILTER (WHERE "group" = 'holdout')
                                        FROM recipients GROUP BY audience""")) if "group" in columns else {}
        assert recipients["recipients/nyc_meetup_invite"].value == counts["nyc_meetup_invite"]
        assert recipients["holdout/nyc_meetup_invite"].value == holdout.get("nyc_meetup_invite", 0)
        assert recipients["dagster/row_count"].value == sum(counts.values())

        # Row counts mean the rows of the asset's relation.
        _, lake_events = _latest(instance, "lake_events")
        assert lake_events["dagster/row_count"].value == 6
        _, lake_subscribers = _latest(instance, "lake_subscribers")
        assert lake_subscribers["dagster/row_count"].value == 5

        # Every asset has a column schema; the clock is a timestamp and a run tag.
        for key in JOB_ASSETS:
            _, metadata = _latest(instance, key)
            assert isinstance(metadata["dagster/column_schema"].value, dg.TableSchema), key
            assert metadata["as_of"].value == datetime(2026, 11, 28, 6, tzinfo=UTC).timestamp(), key
        assert [c.name for c in membership["dagster/column_schema"].value.columns] == ["segment", "subscriber_id"]
        assert "email" in [c.name for c in lake_subscribers["dagster/column_schema"].value.columns]
        assert instance.get_run_by_id(second.ctx.params.run_id).tags["segments/as_of"] == SECOND_AS_OF

        # Compiled SQL only when a definition changed: the first run, then an edit.
        assert [("compiled_sql" in m.metadata) for m in _materializations(instance, "segment_membership")] \
            == [True, False]
        definition = Path(paths.defs) / "subscribers_in_new_york.yaml"
        definition.write_text(definition.read_text().replace("NY", "MA"))
        execute_refresh(paths, as_of="2026-11-29T06:00:00Z", instance=instance)
        _, edited = _latest(instance, "segment_membership")
        assert "**subscribers_in_new_york**" in edited["compiled_sql"].value
        assert "**active_users**" not in edited["compiled_sql"].value


def test_an_unchanged_run_observes_instead_of_materializing(project_paths):
    """Issue 18, item 5: a run that publishes nothing records observations carrying the
    last real metadata forward; the last materialization (which the freshness policy
    reads) stays the last real publish. (`segments run` ends such a run before Dagster
    starts; the UI or a re-executed tick launches it.)"""
    from pipelines.definitions import defs
    from pipelines.defs.resources import SegmentsResource

    paths = project_paths
    resource = SegmentsResource(defs_dir=str(paths.defs), data_dir=str(paths.data))
    with dg.instance_for_test() as instance:
        first = execute_refresh(paths, as_of=AS_OF, instance=instance)
        before = {key: instance.get_latest_materialization_event(dg.AssetKey(key)) for key in JOB_ASSETS}
        again = defs.resolve_job_def("refresh").execute_in_process(
            instance=instance, resources={"segments": resource},
            run_config={"ops": {"ingest": {"config": {"as_of": AS_OF}}}})
        assert again.success
        for key in JOB_ASSETS:
            latest = instance.get_latest_materialization_event(dg.AssetKey(key))
            assert latest.run_id == first.ctx.params.run_id, key  # no materialization by the unchanged run
            [observation] = instance.fetch_observations(dg.AssetKey(key), limit=1).records
            assert observation.run_id == again.run_id, key
            carried = observation.asset_observation.metadata
            assert carried["unchanged_since_run"].value == first.ctx.params.run_id
            assert {k: v for k, v in carried.items() if k != "unchanged_since_run"} \
                == before[key].asset_materialization.metadata, key
        materialized = [e for e in instance.all_logs(again.run_id)
                        if e.dagster_event and e.dagster_event.event_type_value == "ASSET_MATERIALIZATION"]
        assert materialized == []


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.headers["Content-Type"], json.loads(body)))
        self.send_response(503 if "/down" in self.path else 204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hooks/segments", _Hook.received
    finally:
        server.shutdown()
        server.server_close()


def test_a_failed_run_posts_an_alert_to_the_webhook(project_paths, monkeypatch, webhook):
    from pipelines.definitions import defs
    from pipelines.defs.automation import alert_failed_refresh
    from pipelines.defs.resources import SegmentsResource
    from pipelines.run import execute

    url, received = webhook
    paths = project_paths
    resource = SegmentsResource(defs_dir=str(paths.defs), data_dir=str(paths.data), alert_webhook_url=url)

    def broken_history(*args, **kwargs):
        raise UserError("the disk is full")

    with dg.instance_for_test() as instance:
        monkeypatch.setattr(execute, "extend_history", broken_history)
        failed = defs.resolve_job_def("refresh").execute_in_process(
            instance=instance, raise_on_error=False, resources={"segments": resource},
            tags={"segments/as_of": AS_OF}, run_config={"ops": {"ingest": {"config": {"as_of": AS_OF}}}})
        assert not failed.success
        [event] = [e for e in failed.all_events if e.event_type_value == "PIPELINE_FAILURE"]

        def tick(segments: SegmentsResource):
            context = dg.build_run_status_sensor_context(
                sensor_name="alert_failed_refresh", dagster_event=event, dagster_instance=instance,
                dagster_run=instance.get_run_by_id(failed.run_id), resources={"segments": segments},
            ).for_run_failure()
            return alert_failed_refresh(context)

        tick(resource)
        assert isinstance(tick(SegmentsResource(data_dir=str(paths.data))), dg.SkipReason)  # no URL: off

        # A webhook that refuses the connection or answers an error: one line, not a traceback,
        # and not the URL (it carries the webhook's secret token).
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            refused = f"http://127.0.0.1:{closed.getsockname()[1]}/hooks/segments?token=secret"
        for down, reason in [(refused, "Connection refused"), (url + "/down?token=secret", "HTTP Error 503"),
                             ("file:///secret", "must be an http(s) URL")]:
            skipped = tick(SegmentsResource(data_dir=str(paths.data), alert_webhook_url=down))
            assert isinstance(skipped, dg.SkipReason)
            assert reason in skipped.skip_message and "secret" not in skipped.skip_message
            assert "\n" not in skipped.skip_message
    [(content_type, payload), _] = received
    assert content_type == "application/json"
    assert payload["run_id"] == failed.run_id and payload["as_of"] == AS_OF and payload["job"] == "refresh"
    assert "the disk is full" in payload["message"] and failed.run_id in payload["text"]
