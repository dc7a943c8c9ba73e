"""Property: however statuses flip between runs, no non-active subscriber is ever a recipient."""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.publish import audiences
from pipelines.publish.audiences import compute_recipients, suppression_violations
from pipelines.segments.fields import STATUSES

try:  # tests/ on sys.path (no tests/__init__.py)
    from test_publish_support import (
        make_paths,
        make_project,
        membership_table,
        publish,
        query,
        subscribers_table,
        violations,
    )
except ModuleNotFoundError:  # tests/ is a package
    from tests.test_publish_support import (
        make_paths,
        make_project,
        membership_table,
        publish,
        query,
        subscribers_table,
        violations,
    )

IDS = [f"p{i}" for i in range(12)]
SEGMENT_KEYS = ["s1", "s2", "s3"]

statuses_st = st.fixed_dictionaries({i: st.sampled_from(STATUSES) for i in IDS})
members_st = st.fixed_dictionaries({k: st.lists(st.sampled_from(IDS), unique=True) for k in SEGMENT_KEYS})
audience_st = st.fixed_dictionaries({
    "include": st.lists(st.sampled_from(SEGMENT_KEYS), min_size=1, max_size=3, unique=True).map(tuple),
    "exclude": st.lists(st.sampled_from(SEGMENT_KEYS), max_size=2, unique=True).map(tuple),
})
runs_st = st.lists(st.tuples(members_st, statuses_st), min_size=1, max_size=4)


def expected_recipients(audience: dict, members: dict, statuses: dict) -> set[str]:
    included = {i for k in audience["include"] for i in members[k]}
    excluded = {i for k in audience["exclude"] for i in members[k]}
    return {i for i in included - excluded if statuses[i] == "active"}


@settings(max_examples=60, deadline=None)
@given(audiences=st.dictionaries(st.sampled_from(["a1", "a2", "a3"]), audience_st, min_size=1), runs=runs_st)
def test_recipients_are_exactly_the_active_picked_members(audiences, runs):
    project = make_project(SEGMENT_KEYS, audiences)
    for members, statuses in runs:
        subscribers = subscribers_table(statuses)
        recipients = compute_recipients(project, membership_table(members), subscribers, "r")
        assert violations(recipients, subscribers) == 0
        for key, audience in audiences.items():
            got = {r["subscriber_id"] for r in recipients.to_pylist() if r["audience"] == key}
            assert got == expected_recipients(audience, members, statuses)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(audience=audience_st, runs=st.lists(st.tuples(members_st, statuses_st), min_size=2, max_size=3))
def test_published_recipients_and_audience_files_never_hold_non_active(audience, runs):
    project = make_project(SEGMENT_KEYS, {"campaign": {**audience, "fields": ("first_name",)}})
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_paths(Path(tmp))
        for n, (members, statuses) in enumerate(runs):
            publish(paths, project, datetime(2026, 5, 1) + timedelta(days=n), members, statuses)
            bad = query(paths, """SELECT count(*) FROM recipients r LEFT JOIN subscribers s USING (subscriber_id)
                                  WHERE s.status IS DISTINCT FROM 'active'""")
            assert bad == [(0,)]
            exported = pq.read_table(paths.data / "audiences" / "campaign" / "recipients.parquet")
            assert set(exported.column("subscriber_id").to_pylist()) == expected_recipients(
                audience, members, statuses)


def test_suppression_violations_counts_unknown_and_inactive():
    subscribers = subscribers_table({"a": "active", "b": "bounced"})
    recipients = membership_table({"x": ["a", "b", "ghost"]}).rename_columns(["audience", "subscriber_id"])
    recipients = recipients.append_column("email", pc.binary_join_element_wise(
        recipients.column("subscriber_id"), "@example.com", ""))
    assert violations(recipients, subscribers) == 2


def test_suppression_violations_reads_a_file_and_treats_duplicate_rows_strictly(tmp_path):
    # 'c' has an active and an unsubscribed row: not active. ' Active ' is active (trimmed, any case).
    subscribers = pa.table({"subscriber_id": ["a", "b", "c", "c", "d"],
                            "status": [" Active ", "bounced", "active", "unsubscribed", None],
                            "email": ["a@x.io", "b@x.io", "c@x.io", "c2@x.io", "d@x.io"]})
    recipients = pa.table({"audience": ["x", "x", "x", "y", "y"], "subscriber_id": ["a", "b", "c", "a", "d"],
                           "email": ["a@x.io", "b@x.io", "c@x.io", "a@x.io", "d@x.io"]})
    target = tmp_path / "recipients.parquet"
    pq.write_table(recipients, target)
    assert suppression_violations(target, subscribers) == 3
    assert violations(recipients.slice(0, 1), subscribers) == 0


def test_suppression_join_spills_instead_of_running_out_of_memory(monkeypatch):
    # 1M long ids: the join's hash table is larger than the limit, so DuckDB must spill to disk.
    n = 1_000_000
    ids = pc.binary_join_element_wise("subscriber-", pc.cast(pa.array(np.arange(n) + 10**9), pa.string()),
                                      "-with-a-long-tail", "")
    emails = pc.binary_join_element_wise(ids, "@example.com", "")
    subscribers = pa.table({"subscriber_id": ids, "status": np.where(np.arange(n) % 10 == 0, "bounced", "active"),
                            "email": emails})
    even = pa.array(np.arange(0, n, 2))
    recipients = pa.table({"audience": ["a"] * (n // 2), "subscriber_id": ids.take(even),
                           "email": emails.take(even)})
    monkeypatch.setattr(audiences, "SUPPRESSION_MEMORY_LIMIT", "48MB")
    assert violations(recipients, subscribers) == n // 10  # every tenth row is bounced, all even
