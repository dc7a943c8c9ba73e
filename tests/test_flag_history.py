"""The run's history path (membership flags, append-only history files) publishes
exactly what the oracle (tests/publish_oracle.py: `compute_history` over whole
history tables) computes on the same published version.

Property: for random sequences of runs (segments added and deleted between
runs, members coming and going, subscribers leaving the snapshot, a run that
replaces the previous one at the same as_of), every published history relation
is the oracle's. Also: the history files stay appendable past compaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_publish_support import (
    make_paths,
    make_project,
    membership_table,
    publish,
    query,
    subscribers_table,
)

from pipelines.core.flags import membership_to_flags, sort_by_id
from pipelines.publish import flag_history, history_files, membership_files
from pipelines.publish.flag_history import extend_history
from pipelines.publish.state import current_state

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
    """What `pipelines.run.execute` does: flags -> extend_history -> publish_version (files)."""
    return publish(paths, project, as_of, members, statuses, run_id=run_id)


def oracle(paths, project, as_of, members, run_id):
    """What every relation in RELATIONS must hold after publishing this run, from the
    oracle's whole history tables on the currently published version."""
    import duckdb
    import pyarrow.compute as pc
    from publish_oracle import compute_history

    history = compute_history(current_state(paths), membership_table(members), run_id, as_of,
                              segments=project.segments)
    run_sizes = history.run_sizes()
    segments = run_sizes.filter(pc.is_in(run_sizes.column("segment"), pa.array(list(project.segments))))
    with duckdb.connect() as con:
        con.register("segment_membership_history", history.history)
        con.register("membership_changes", history.changes)
        con.register("segment_sizes", history.sizes)
        con.register("segments", segments)
        con.execute("CREATE VIEW segment_membership AS SELECT segment, subscriber_id "
                    "FROM segment_membership_history WHERE valid_to IS NULL")
        con.execute("CREATE MACRO segment_members_at(key, ts) AS TABLE SELECT subscriber_id "
                    "FROM segment_membership_history WHERE segment = key AND valid_from <= ts "
                    "AND (valid_to IS NULL OR ts < valid_to) ORDER BY subscriber_id")
        return {name: con.execute(sql).fetchall() for name, sql in RELATIONS.items()}


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
    paths = make_paths(tmp / "flags")
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
        # (The same as_of and inputs twice never reach the publish: run/prepare.py ends
        # such a run as unchanged. Here it replaces the published run like any other.)
        expected = oracle(paths, project, as_of, members, run_id)
        result = publish_flags(paths, project, as_of, members, statuses, run_id, tmp)
        assert result.run_id == run_id
        for name, sql in RELATIONS.items():
            assert query(paths, sql) == expected[name], (index, name)


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
        assert all(len(files) <= 3 for files in manifest.values())
    assert query(paths, "SELECT count(*) FROM membership_changes")[0][0] == expected_changes
    assert query(paths, "SELECT count(DISTINCT run_id) FROM segment_sizes")[0][0] == 8


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
