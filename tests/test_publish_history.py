"""History over several runs, checked against hand-computed stays, changes and sizes."""

from __future__ import annotations

from datetime import datetime

import pyarrow.parquet as pq
import pytest

from pipelines.errors import UserError
from pipelines.publish.state import current_state

try:  # tests/ on sys.path (no tests/__init__.py)
    from test_publish_support import make_paths, make_project, publish, query
except ModuleNotFoundError:  # tests/ is a package
    from tests.test_publish_support import make_paths, make_project, publish, query

T1 = datetime(2026, 1, 1)
T2 = datetime(2026, 1, 8)
T3 = datetime(2026, 1, 15)
STATUSES = {"s1": "active", "s2": "active", "s3": "active", "s4": "active"}

# Run 1: a={s1,s2} b={s2,s3}
# Run 2: a={s2,s4} b={s3}          s1 leaves a, s4 enters a, s2 leaves b
# Run 3: a={s1,s2} c={s4}, b gone  s1 re-enters a (new stay), s4 leaves a, b's s3 closed, s4 enters c
RUNS = [
    (T1, "r1", ["a", "b"], {"a": ["s1", "s2"], "b": ["s2", "s3"]}),
    (T2, "r2", ["a", "b"], {"a": ["s2", "s4"], "b": ["s3"]}),
    (T3, "r3", ["a", "c"], {"a": ["s1", "s2"], "c": ["s4"]}),
]

EXPECTED_HISTORY = [
    ("a", "s1", T1, T2, "r1", "r2"),
    ("a", "s1", T3, None, "r3", None),
    ("a", "s2", T1, None, "r1", None),
    ("a", "s4", T2, T3, "r2", "r3"),
    ("b", "s2", T1, T2, "r1", "r2"),
    ("b", "s3", T1, T3, "r1", "r3"),
    ("c", "s4", T3, None, "r3", None),
]
EXPECTED_CHANGES = [
    ("r1", T1, "a", "s1", "entered"), ("r1", T1, "a", "s2", "entered"),
    ("r1", T1, "b", "s2", "entered"), ("r1", T1, "b", "s3", "entered"),
    ("r2", T2, "a", "s1", "exited"), ("r2", T2, "a", "s4", "entered"), ("r2", T2, "b", "s2", "exited"),
    ("r3", T3, "a", "s1", "entered"), ("r3", T3, "a", "s4", "exited"),
    ("r3", T3, "b", "s3", "exited"), ("r3", T3, "c", "s4", "entered"),
]
EXPECTED_SIZES = [
    ("r1", T1, "a", 2, 2, 0), ("r1", T1, "b", 2, 2, 0),
    ("r2", T2, "a", 2, 1, 1), ("r2", T2, "b", 1, 0, 1),
    ("r3", T3, "a", 2, 1, 1), ("r3", T3, "b", 0, 0, 1), ("r3", T3, "c", 1, 1, 0),
]


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory):
    paths = make_paths(tmp_path_factory.mktemp("history"))
    for as_of, run_id, keys, members in RUNS:
        result = publish(paths, make_project(keys), as_of, members, STATUSES, run_id=run_id)
        assert current_state(paths) == result
    return paths


def test_three_runs_match_hand_computed_history(three_runs):
    paths = three_runs
    assert query(paths, """SELECT segment, subscriber_id, valid_from, valid_to, entered_run_id, exited_run_id
                           FROM segment_membership_history ORDER BY ALL""") == EXPECTED_HISTORY
    assert query(paths, "SELECT * FROM membership_changes ORDER BY run_id, segment, subscriber_id") \
        == EXPECTED_CHANGES
    assert query(paths, "SELECT * FROM segment_sizes ORDER BY run_id, segment") == EXPECTED_SIZES


def test_deleted_segment_leaves_segments_but_keeps_closed_history(three_runs):
    paths = three_runs
    assert query(paths, "SELECT segment, members, entered, exited FROM segments ORDER BY segment") == [
        ("a", 2, 1, 1), ("c", 1, 1, 0)]
    assert query(paths, "SELECT count(*) FROM segment_membership_history WHERE segment = 'b' AND valid_to IS NULL") \
        == [(0,)]
    assert query(paths, "SELECT * FROM segment_membership ORDER BY ALL") == [
        ("a", "s1"), ("a", "s2"), ("c", "s4")]
    assert [r[0] for r in query(paths, "SELECT run_id FROM runs WHERE status = 'success' ORDER BY as_of")] == [
        "r1", "r2", "r3"]


@pytest.mark.parametrize("segment, ts, expected", [
    ("a", "'2025-12-31'", []),  # before the first run
    ("a", "'2026-01-01'", ["s1", "s2"]),  # a date string: midnight UTC = T1, valid_from is inclusive
    ("a", "'2026-01-07 23:59:59'", ["s1", "s2"]),
    ("a", "'2026-01-08T00:00:00Z'", ["s2", "s4"]),  # valid_to is exclusive
    ("a", "'2026-01-08T01:00:00+02:00'", ["s1", "s2"]),  # = 2026-01-07 23:00 UTC
    ("a", "TIMESTAMP '2026-01-10 12:00:00'", ["s2", "s4"]),
    ("a", "TIMESTAMPTZ '2026-01-14 23:00:00-05:00'", ["s1", "s2"]),  # = 2026-01-15 04:00 UTC, after T3
    ("a", "TIMESTAMPTZ '2026-01-14 23:00:00+00:00'", ["s2", "s4"]),
    ("a", "CAST('2026-01-08 00:00:00+00' AS TIMESTAMPTZ)", ["s2", "s4"]),
    ("b", "'2026-01-10'", ["s3"]),
    ("b", "'2026-01-15'", []),  # closed when b was deleted
    ("c", "'2026-01-10'", []),
    ("c", "'2030-01-01'", ["s4"]),
])
def test_segment_members_at(three_runs, segment, ts, expected):
    import duckdb

    with duckdb.connect(str(three_runs.warehouse), read_only=True) as con:
        # A reader's session time zone must not change what a timestamp means.
        con.execute("SET TimeZone = 'America/New_York'")
        rows = con.execute(f"SELECT * FROM segment_members_at('{segment}', {ts})").fetchall()
    assert [r[0] for r in rows] == expected


def test_as_of_before_the_published_run_is_refused(three_runs):
    before = current_state(three_runs)
    with pytest.raises(UserError, match="history only moves forward"):
        publish(three_runs, make_project(["a"]), T2, {"a": ["s1"]}, STATUSES, run_id="late")
    assert current_state(three_runs) == before


def test_first_run_enters_everyone_and_empty_segments_get_size_rows(tmp_path):
    paths = make_paths(tmp_path)
    statuses = {"x": "active", "y": "active"}
    publish(paths, make_project(["a", "empty"]), T1, {"a": ["x", "y"]}, statuses, run_id="r1")
    assert query(paths, "SELECT count(*) FROM segment_membership_history")[0][0] == 2
    assert [r[0] for r in query(paths, "SELECT change FROM membership_changes")] == ["entered", "entered"]
    assert query(paths, "SELECT segment, members, entered, exited FROM segment_sizes ORDER BY segment") == [
        ("a", 2, 2, 0),
        ("empty", 0, 0, 0),
    ]


def test_same_as_of_with_new_inputs_replaces_the_last_run(tmp_path):
    paths = make_paths(tmp_path)
    publish(paths, make_project(["a"]), T1, {"a": ["s1", "s2"]}, STATUSES, run_id="r1")
    publish(paths, make_project(["a"]), T2, {"a": ["s1", "s3"]}, STATUSES, run_id="r2")
    base = current_state(paths)
    # A late file changes T2's inputs: r2b replaces r2 and builds on r1's version.
    result = publish(paths, make_project(["a"]), T2, {"a": ["s2", "s4"]}, STATUSES, run_id="r2b")
    assert result.run_id == "r2b" and result.replaces_run_id == "r2"
    state = current_state(paths)
    assert state.base_version == base.base_version and state.replaces_run_id == "r2"
    assert query(paths, "SELECT * FROM membership_changes ORDER BY run_id, subscriber_id") == [
        ("r1", T1, "a", "s1", "entered"), ("r1", T1, "a", "s2", "entered"),
        ("r2b", T2, "a", "s1", "exited"), ("r2b", T2, "a", "s4", "entered"),
    ]
    assert query(paths, "SELECT subscriber_id, valid_from, valid_to FROM segment_membership_history ORDER BY ALL") \
        == [("s1", T1, T2), ("s2", T1, None), ("s4", T2, None)]
    assert query(paths, "SELECT run_id, status FROM runs ORDER BY started_at, run_id") == [
        ("r1", "success"), ("r2", "replaced"), ("r2b", "success")]
    # Replacing again still builds on r1's version (kept even beyond keep_versions).
    publish(paths, make_project(["a"]), T2, {"a": ["s2"]}, STATUSES, run_id="r2c", keep_versions=1)
    assert query(paths, "SELECT run_id, change, subscriber_id FROM membership_changes WHERE as_of = ? ORDER BY ALL",
                 [T2]) == [("r2c", "exited", "s1")]
    assert len(list((paths.published / "versions").iterdir())) == 2  # current + its base


def test_history_files_are_sorted_for_readers(three_runs):
    state = current_state(three_runs)
    membership = pq.read_table(state.version_dir / "segment_membership.parquet")
    pairs = list(zip(membership.column("segment").to_pylist(), membership.column("subscriber_id").to_pylist(),
                     strict=True))
    assert pairs == sorted(pairs)
