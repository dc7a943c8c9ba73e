"""The whole refresh job through real Dagster, real files, real DuckDB, on a tiny fixture.

Expected memberships are worked out by hand from tests/conftest.py at
as_of 2026-11-27T06:00Z (see the comments).
"""

import dagster as dg
import duckdb
import pytest
from conftest import AS_OF

from pipelines.definitions import defs
from pipelines.defs.resources import SegmentsResource
from pipelines.errors import UserError
from pipelines.runner import execute_refresh

EXPECTED = {
    # state is NY, case-insensitive (s2 has "ny")
    "subscribers_in_new_york": {"s1", "s2", "s4"},
    # tags has_any [webinar-attendee, webinar-2026], case-insensitive
    "webinar_attendees": {"s1", "s2", "s5"},
    # a purchase within 30 days of as_of; s4's purchase is after as_of
    "active_users": {"s1", "s3"},
    # email open/click within 90 days
    "engaged_subscribers": {"s2", "s5"},
    # created in 30 days AND exactly one purchase, AND (Checkout OR tag new-customer)
    "new_customers": {"s1"},
    # in NY and webinar, not in active_users
    "ny_webinar_not_customers": {"s2"},
}


def _membership(paths):
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        rows = con.execute("SELECT segment, subscriber_id FROM segment_membership").fetchall()
    result: dict[str, set[str]] = {}
    for segment, subscriber in rows:
        result.setdefault(segment, set()).add(subscriber)
    return result


def test_refresh_job_publishes_real_membership(project_paths):
    with dg.instance_for_test() as instance:
        summary = execute_refresh(project_paths, as_of=AS_OF, instance=instance)
        assert summary.status == "published"
        assert _membership(project_paths) == {k: v for k, v in EXPECTED.items() if v}
        with duckdb.connect(str(project_paths.warehouse), read_only=True) as con:
            recipients = con.execute(
                "SELECT audience, subscriber_id, email, first_name, city FROM recipients"
            ).fetchall()
            segments = dict(con.execute("SELECT segment, members FROM segments").fetchall())
        # include NY or webinar, exclude active_users, then only active subscribers remain
        assert recipients == [("nyc_meetup_invite", "s5", "eve@example.com", "Eve", "Austin")]
        assert segments == {k: len(v) for k, v in EXPECTED.items()}
        # The run is in Dagster's run history with every asset materialized.
        run = instance.get_run_by_id(summary.ctx.params.run_id)
        assert run is not None and run.is_success
        latest = instance.get_latest_materialization_event(dg.AssetKey("analyst_warehouse"))
        assert latest is not None and latest.run_id == summary.ctx.params.run_id

        # Each segment's published SQL runs inside the warehouse (it reads the
        # `events` view) and returns exactly the published members.
        with duckdb.connect(str(project_paths.warehouse), read_only=True) as con:
            for key, sql in con.execute("SELECT segment, sql FROM segments").fetchall():
                members = {row[0] for row in con.execute(sql).fetchall()}
                assert members == EXPECTED[key], key
            assert con.execute("SELECT count(*) FROM events").fetchone()[0] == 6

        # Same as_of, same inputs: nothing changes.
        again = execute_refresh(project_paths, as_of=AS_OF, instance=instance)
        assert again.status == "unchanged"
        with duckdb.connect(str(project_paths.warehouse), read_only=True) as con:
            assert con.execute("SELECT count(*) FROM membership_changes").fetchone()[0] == sum(
                len(v) for v in EXPECTED.values()
            )


def test_materialize_with_polars_engine_gives_the_same_membership(project_paths):
    resource = SegmentsResource(defs_dir=str(project_paths.defs), data_dir=str(project_paths.data), engine="polars")
    job = defs.resolve_job_def("refresh")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(
            run_config={"ops": {"ingest": {"config": {"as_of": AS_OF}}}},
            instance=instance, resources={"segments": resource},
        )
        assert result.success
        materialized = {m.asset_key.to_user_string(): m for m in result.asset_materializations_for_node("segments")}
        assert set(materialized) == {"segment_membership", "segment_history", "audience_recipients",
                                     "analyst_warehouse"}
        membership = materialized["segment_membership"]
        assert membership.metadata["dagster/row_count"].value == sum(len(v) for v in EXPECTED.values())
        assert "| new_customers | 1 |" in membership.metadata["segments"].value
        assert "SELECT" in membership.metadata["compiled_sql"].value
        checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
        assert checks["suppression"] and checks["unique_members"]
    assert _membership(project_paths) == {k: v for k, v in EXPECTED.items() if v}


def test_failing_suppression_check_blocks_publishing(project_paths, monkeypatch):
    import pyarrow as pa

    import pipelines.publish.audiences as audiences

    with dg.instance_for_test() as instance:
        execute_refresh(project_paths, as_of=AS_OF, instance=instance)
        before = _membership(project_paths)
        real = audiences.recipient_parts

        def leaky(project, flags, subscribers, run_id, suppressions=None):
            parts = list(real(project, flags, subscribers, run_id, suppressions))
            # Smuggle in the unsubscribed s2: the blocking check must stop the publish.
            schema = parts[0].schema
            row = {name: [None] for name in schema.names}
            row.update(audience=["nyc_meetup_invite"], subscriber_id=["s2"], email=["bob@example.com"], group=["send"],
                       run_id=["x"])
            yield from [*parts, pa.table(row, schema=schema)]

        monkeypatch.setattr(audiences, "recipient_parts", leaky)
        with pytest.raises(UserError, match="suppression"):
            execute_refresh(project_paths, as_of="2026-11-27T07:00:00Z", instance=instance)
    with duckdb.connect(str(project_paths.warehouse), read_only=True) as con:
        as_of = con.execute("SELECT max(as_of) FROM runs WHERE status = 'success'").fetchone()[0]
        bad = con.execute("SELECT count(*) FROM recipients WHERE subscriber_id = 's2'").fetchone()[0]
    assert str(as_of).startswith("2026-11-27 06:00")
    assert bad == 0
    assert _membership(project_paths) == before
