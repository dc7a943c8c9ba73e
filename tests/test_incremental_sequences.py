"""incremental == full == reference over SEQUENCES of runs.

Each example draws definitions with the differential tests' generators (every
operator, windows on fields, on events and inside event `where`s, segment
references), data aimed at window edges, then runs 2-4 times. Between runs the
clock moves (not at all, a microsecond, an hour, exactly one window, a window
and a microsecond...), the snapshot stays the same file, is copied unchanged or
changes (rows edited, dropped, added), and new event files may land. Every run
builds on the previous run's flags, as the pipeline does, and must give a full
evaluation's membership and `reference_membership`'s.

What an incremental run may skip is derived from the operator registry
(pipelines/segments/operators.py); this is what catches a property there that
the edge rules of engine/incremental.py do not honour (issue 18, item 6).
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from unittest import mock

import pyarrow as pa
import pyarrow.parquet as pq
import test_engine_differential as differential
from engine_support import CATALOG, event_table, subscriber_table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import reference_membership
from test_incremental import _full, _incremental, _write_snapshot

from pipelines.engine import incremental
from pipelines.engine.incremental import EvaluationRecord
from pipelines.lake.layout import row_hashes_path
from pipelines.segments.model import EventFilter, FieldFilter, Group, Segment
from pipelines.segments.plan import SEGMENT_PREFIX

US = timedelta(microseconds=1)
# Window lengths the generators use are 1, 7 and 30 days: moves that land exactly on,
# just before and just after the edges of values drawn at the previous as_of.
CLOCK_MOVES = [timedelta(0), US, timedelta(hours=1), timedelta(days=1) - US, timedelta(days=1),
               timedelta(days=1) + US, timedelta(days=7), timedelta(days=30), timedelta(days=31)]


def _membership(flags: pa.Table) -> set[tuple[str, str]]:
    ids = flags.column("subscriber_id").to_pylist()
    out = set()
    for name in flags.column_names:
        if name.startswith(SEGMENT_PREFIX):
            key = name[len(SEGMENT_PREFIX):]
            out |= {(key, sid) for sid, member in zip(ids, flags.column(name).to_pylist(), strict=True) if member}
    return out


@st.composite
def changed_rows(draw, rows: list[dict], as_of: datetime, step: int) -> list[dict]:
    """Rows kept, edited (one field redrawn near `as_of`) or dropped, and 0-2 new ones."""
    out = []
    fields = sorted(differential.FILTERED_SUBSCRIBER_FIELDS.items())
    for row in rows:
        fate = draw(st.sampled_from(["keep", "keep", "edit", "drop"]))
        if fate == "drop":
            continue
        if fate == "edit":
            name, field_type = draw(st.sampled_from([f for f in fields if f[0] != "subscriber_id"]))
            row = {**row, name: draw(differential.value_for(field_type, as_of))}
        out.append(row)
    for i, row in enumerate(draw(differential.subscriber_rows(as_of))[:draw(st.integers(0, 2))]):
        out.append({**row, "subscriber_id": f"new{step}_{i}", "email": f"new{step}_{i}@example.com"})
    return out


@st.composite
def run_sequences(draw):
    as_of = draw(st.sampled_from(differential.AS_OFS))
    subscribers = draw(differential.subscriber_rows(as_of))
    events = draw(differential.event_rows(as_of, [s["subscriber_id"] for s in subscribers]))
    make = draw(st.sampled_from([differential.projects, differential.single_filter_projects]))
    project = draw(make(as_of, subscribers, events))
    # Always some windows inside an event `where`, on a timestamp and a date field.
    segments = dict(project.segments)
    for i in range(draw(st.integers(1, 3))):
        where = FieldFilter(field=draw(st.sampled_from(["occurred_at", "ship_date"])),
                            op=draw(st.sampled_from(["in_last_days", "not_in_last_days"])),
                            value=draw(st.sampled_from(differential.WINDOWS)))
        event = EventFilter(event=draw(st.sampled_from(differential.EVENT_NAMES)),
                            op=draw(st.sampled_from(["performed", "not_performed"])), where=(where,))
        segments[f"where_{i}"] = Segment(key=f"where_{i}", name=f"where_{i}", groups=(Group(filters=(event,)),))
        # ... and an event it may count, its values on or near the window edges
        events.append({**{name: None for name in CATALOG.event}, "event_id": f"w{i}", "event": event.event,
                       "subscriber_id": draw(st.sampled_from([r["subscriber_id"] for r in subscribers])),
                       "occurred_at": draw(differential.timestamps(as_of)),
                       "ship_date": draw(differential.dates_near(as_of))})
    project = project.model_copy(update={"segments": segments})
    steps = []
    now, rows = as_of, subscribers
    for step in range(1, draw(st.integers(2, 4))):
        now = now + draw(st.sampled_from(CLOCK_MOVES))
        snapshot = draw(st.sampled_from(["same file", "copied", "changed"]))
        if snapshot == "changed":
            rows = draw(changed_rows(rows, now, step))
        new_events = []
        if draw(st.booleans()):
            drawn = draw(differential.event_rows(now, [r["subscriber_id"] for r in rows]))
            new_events = [{**e, "event_id": f"r{step}_{e['event_id']}"} for e in drawn]
        steps.append((now, snapshot, rows, new_events))
    return project, as_of, subscribers, events, steps


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(sequence=run_sequences(), engine=st.sampled_from(["duckdb", "polars"]))
def test_every_run_of_a_sequence_equals_a_full_run_and_the_reference(tmp_path_factory, sequence, engine):
    project, as_of, subscribers, events, steps = sequence
    tmp = tmp_path_factory.mktemp("sequence")

    def write_snapshot(rows: list[dict], n: int):
        file = tmp / f"s{n}.parquet"
        ordered = sorted(rows, key=lambda r: r["subscriber_id"])
        _write_snapshot(subscriber_table(ordered, CATALOG), file)
        return file

    snapshot = write_snapshot(subscribers, 0)
    event_files = [tmp / "e0.parquet"]
    pq.write_table(event_table(events, CATALOG), event_files[0])
    all_events = list(events)
    flags = _full(project, snapshot, event_files, as_of, engine)
    assert _membership(flags) == reference_membership(project, subscribers, events, as_of)
    record = EvaluationRecord.of(project, as_of, snapshot, event_files)

    # The affected share is no reason to fall back to a full run here: tiny data
    # would almost always exceed it and the incremental path would go untested.
    with mock.patch.object(incremental, "MAX_AFFECTED_SHARE", float("inf")):
        for n, (now, how, rows, new_events) in enumerate(steps, start=1):
            if how == "copied":
                copy = tmp / f"s{n}.parquet"
                shutil.copyfile(snapshot, copy)
                shutil.copyfile(row_hashes_path(snapshot), row_hashes_path(copy))
                snapshot = copy
            elif how == "changed":
                snapshot = write_snapshot(rows, n)
            if new_events:
                event_files = [*event_files, tmp / f"e{n}.parquet"]
                pq.write_table(event_table(new_events, CATALOG), event_files[-1])
                all_events += new_events
            result = _incremental(project, tmp, base_flags=flags, base_record=record, as_of=now,
                                  snapshot_file=snapshot, event_files=event_files, engine=engine)
            full = _full(project, snapshot, event_files, now, engine)
            expected = reference_membership(project, rows, all_events, now)
            assert _membership(full) == expected, f"run {n}: full evaluation"
            assert result is not None, f"run {n}: incremental evaluation refused"
            flags, _how = result
            assert _membership(flags) == expected, (
                f"run {n} ({how}, as_of {now}): incremental != full\n"
                f"  missing {sorted(expected - _membership(flags))}\n"
                f"  extra   {sorted(_membership(flags) - expected)}")
            assert flags.equals(full)
            record = EvaluationRecord.of(project, now, snapshot, event_files)
