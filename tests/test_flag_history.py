"""The run's history path (membership flags, append-only history files) publishes
exactly what the table path (`compute_history` over whole history tables, an
oracle kept for this test) does.

Property: for random sequences of runs (segments added and deleted between
runs, members coming and going, subscribers leaving the snapshot, a run that
replaces the previous one at the same as_of), every published history relation
is the same through both paths. Also: the history files stay appendable past
compaction, and a flags-path version can follow a table-path one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_publish_support import (
    fingerprint_of,
    make_paths,
    make_project,
    membership_table,
    query,
    subscribers_table,
)

from pipelines.engine.flags import sort_by_id
from pipelines.publish import flag_history, history_files, membership_files
from pipelines.publish.flag_history import extend_history, membership_to_flags
from pipelines.publish.history_files import write_flags
from pipelines.publish.state import current_state
from pipelines.publish.warehouse import publish_version, stage_version

T0 = datetime(2026, 5, 1, 6)
SEGMENTS = ["a", "b", "c"]
PEOPLE = [f"s{i}" for i in range(8)]
RELATIONS = {
    "segment_membership": "SELECT segment, subscriber_id FROM segment_membership ORDER BY ALL",
    "segment_membership_history": "SELECT * FROM segment_membership_history ORDER BY ALL",
    "membership_changes": "SELECT * FROM membership_changes ORDER BY ALL",
    "segment_sizes": "SELECT * FROM segment_sizes ORDER BY ALL",
    "segments": "SELECT segment, members, entered, exited FROM segments ORDER BY ALL",
    "members_at": "SELECT * FROM segment_members_at('a', TIMESTAMP '2026-05-01 07:30:00') ORDER BY ALL",
}


def publish_flags(paths, project, as_of, members, statuses, run_id, tmp):
    """What `pipelines.refresh` does: flags -> extend_history -> stage_version (files)."""
    subscribers = subscribers_table(statuses)
    ids = sort_by_id(subscribers.select(["subscriber_id"])).column("subscriber_id")
    flags = membership_to_flags(membership_table(members), ids, keys=project.segments)
    work = tmp / f"work-{run_id}"
    work.mkdir(parents=True)
    flags_file = work / history_files.FLAGS_FILE
    write_flags(flags, flags_file)
    delta = extend_history(current_state(paths), flags, run_id, as_of, segments=project.segments,
                           out_dir=work / "history")
    from pipelines.publish.audiences import compute_recipients

    staged = stage_version(
        paths, project=project, run_id=run_id, as_of=as_of, started_at=as_of,
        snapshot_name=f"subscribers_{as_of:%Y%m%dT%H%M%S}Z.csv", snapshot_rows=len(statuses),
        fingerprint=fingerprint_of(sorted(project.segments), members, statuses, sorted(project.audiences)),
        subscribers=subscribers, membership=None, history=delta,
        recipients=compute_recipients(project, flags, subscribers, run_id),
        compiled_sql={k: f"SELECT subscriber_id FROM subscribers /* {k} */" for k in project.segments},
        quarantine=None, flags_file=flags_file,
    )
    return publish_version(paths, staged)


def publish(paths, project, as_of, members, statuses, *, run_id):
    """The oracle: whole history tables (compute_history) staged as tables."""
    from pipelines.publish.audiences import compute_recipients
    from pipelines.publish.history import compute_history
    from pipelines.publish.warehouse import plan_publish

    fingerprint = fingerprint_of(sorted(project.segments), members, statuses, sorted(project.audiences))
    membership, subscribers = membership_table(members), subscribers_table(statuses)
    plan = plan_publish(paths, as_of, fingerprint)
    history = compute_history(plan.current, membership, run_id, as_of, segments=project.segments)
    staged = stage_version(
        paths, project=project, run_id=run_id, as_of=as_of, started_at=as_of,
        snapshot_name=f"subscribers_{as_of:%Y%m%dT%H%M%S}Z.csv", snapshot_rows=len(statuses),
        fingerprint=fingerprint, subscribers=subscribers, membership=membership, history=history,
        recipients=compute_recipients(project, membership, subscribers, run_id),
        compiled_sql={k: f"SELECT subscriber_id FROM subscribers /* {k} */" for k in project.segments},
        quarantine=None,
    )
    return publish_version(paths, staged)


run_strategy = st.fixed_dictionaries({
    "segments": st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3, unique=True),
    "people": st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=8, unique=True),
    "seed": st.integers(0, 1000),
    "same_as_of": st.booleans(),
})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(runs=st.lists(run_strategy, min_size=1, max_size=5), row_group=st.sampled_from([1 << 20, 1, 2, 5]),
       writers=st.sampled_from([1, 2, 3]))
def test_flags_path_publishes_the_same_history(tmp_path_factory, monkeypatch, runs, row_group, writers):
    """Also with tiny row groups dealt over several membership files (membership_files.py)."""
    import random

    monkeypatch.setattr(flag_history, "_ROW_GROUP", row_group)
    monkeypatch.setattr(membership_files, "writer_count", lambda: writers)
    tmp = tmp_path_factory.mktemp("history")
    tables, flags = make_paths(tmp / "tables"), make_paths(tmp / "flags")
    as_of = T0
    for index, run in enumerate(runs):
        if index and not run["same_as_of"]:
            as_of = as_of + timedelta(hours=1)
        rng = random.Random(run["seed"])
        people = sorted(run["people"])
        members = {s: sorted(p for p in people if rng.random() < 0.5) for s in run["segments"]}
        statuses = {p: rng.choice(["active", "active", "unsubscribed"]) for p in people}
        project = make_project(run["segments"], {"aud": {"include": (run["segments"][0],)}})
        run_id = f"r{index}"
        one = publish(tables, project, as_of, members, statuses, run_id=run_id)
        other = publish_flags(flags, project, as_of, members, statuses, run_id, tmp)
        assert one.status == other.status
        for name, sql in RELATIONS.items():
            assert query(tables, sql) == query(flags, sql), (index, name)


def test_history_files_compact_and_stay_readable(tmp_path, monkeypatch):
    monkeypatch.setattr(history_files, "COMPACT_AFTER", 3)
    paths = make_paths(tmp_path)
    project = make_project(["a"])
    expected_changes = 0
    previous: set[str] = set()
    for n in range(8):
        members = {"a": [p for i, p in enumerate(PEOPLE) if (i + n) % 3 == 0]}
        now = set(members["a"])
        expected_changes += len(now ^ previous)
        previous = now
        publish_flags(paths, project, T0 + timedelta(hours=n), members,
                      dict.fromkeys(PEOPLE, "active"), f"r{n}", tmp_path)
        manifest = history_files.read_manifest(current_state(paths).version_dir)
        assert all(len(files) <= 3 for files in manifest.files.values())
    assert query(paths, "SELECT count(*) FROM membership_changes")[0][0] == expected_changes
    assert query(paths, "SELECT count(DISTINCT run_id) FROM segment_sizes")[0][0] == 8


def test_flags_path_follows_a_table_path_version(tmp_path):
    paths = make_paths(tmp_path)
    project = make_project(["a", "b"])
    statuses = dict.fromkeys(PEOPLE, "active")
    publish(paths, project, T0, {"a": ["s1", "s2"], "b": ["s3"]}, statuses, run_id="r1")
    publish_flags(paths, project, T0 + timedelta(hours=1), {"a": ["s2"], "b": ["s3", "s4"]}, statuses, "r2",
                  tmp_path)
    assert query(paths, "SELECT subscriber_id, valid_from, valid_to FROM segment_membership_history "
                        "WHERE segment = 'a' ORDER BY ALL") == [
        ("s1", T0, T0 + timedelta(hours=1)), ("s2", T0, None)]
    assert query(paths, "SELECT run_id, change, subscriber_id FROM membership_changes ORDER BY ALL") == [
        ("r1", "entered", "s1"), ("r1", "entered", "s2"), ("r1", "entered", "s3"),
        ("r2", "entered", "s4"), ("r2", "exited", "s1")]


def test_a_failure_midway_closes_the_history_writers(tmp_path, monkeypatch):
    """An error while history is written reaches the caller, and the writers' files
    and background threads are closed (no thread is left waiting)."""
    import threading

    import pytest


    project = make_project(["a", "b"])
    subscribers = subscribers_table(dict.fromkeys(PEOPLE, "active"))
    ids = sort_by_id(subscribers.select(["subscriber_id"])).column("subscriber_id")
    flags = membership_to_flags(membership_table({"a": PEOPLE[:3], "b": PEOPLE[2:]}), ids, keys=project.segments)
    before = set(threading.enumerate())

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(flag_history, "_change_rows", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        extend_history(None, flags, "r1", T0, segments=project.segments, out_dir=tmp_path / "history")
    assert [t for t in threading.enumerate() if t not in before and t.is_alive()] == []
    # The writers were closed: the open-stays file is a complete (empty) Parquet file.
    import pyarrow.parquet as pq

    assert pq.read_metadata(tmp_path / "history" / flag_history.OPEN_STAYS_FILE).num_rows >= 0
