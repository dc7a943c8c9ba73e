"""Incremental evaluation gives exactly the flags of a full evaluation.

Property: for a random base snapshot, events and definitions evaluated at a
random `as_of`, then a random next snapshot (rows changed, deleted, added),
new events (some dated after either as_of), a later `as_of` (crossing field
and event windows or not) and possibly an edited definition, the flags that
`evaluate_incremental` derives from the base's flags equal a full evaluation.
An end-to-end test checks the same through `segments run`'s steps.
"""

from __future__ import annotations

import importlib.util
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.core.clock import format_ts
from pipelines.core.flags import sort_by_id
from pipelines.core.schemas import conform
from pipelines.engine import evaluate_flags
from pipelines.engine.incremental import EvaluationRecord, evaluate_incremental
from pipelines.lake.layout import row_hashes_path
from pipelines.lake.parts import write_row_hashes
from pipelines.runner import execute_refresh
from pipelines.sample_data import generate_events, generate_subscribers
from pipelines.segments.fields import REQUIRED_EVENT_FIELDS
from pipelines.segments.loader import load_project
from pipelines.segments.plan import build_plan

AS_OF = datetime(2026, 11, 1)


def run(paths, at: datetime, **options):
    """One `segments run` (the refresh job in-process) at `at`: its summary."""
    with dg.instance_for_test() as instance:
        return execute_refresh(paths, as_of=format_ts(at), instance=instance, **options)
ROOT = Path(__file__).resolve().parent.parent


def _bench_definitions():
    spec = importlib.util.spec_from_file_location("bench_definitions", ROOT / "bench" / "definitions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


write_definitions = _bench_definitions().write_definitions


def _project(tmp: Path, count: int, seed: int):
    project, problems = load_project(write_definitions(tmp / f"defs-{count}-{seed}", count, seed))
    assert not problems
    return project


def _changed_snapshot(base: pa.Table, rng: np.random.Generator, change: float, delete: float,
                      add: pa.Table) -> pa.Table:
    """Some rows get another row's value in one column (or NULL), some go, `add` comes."""
    n = base.num_rows
    keep = rng.random(n) >= delete
    columns = {}
    for name in base.column_names:
        column = base.column(name).combine_chunks()
        if name in ("subscriber_id", "email", "status"):
            columns[name] = column
            continue
        changed = np.flatnonzero(rng.random(n) < change / 4)
        if len(changed):
            source = rng.integers(0, n, len(changed))
            index = np.arange(n)
            index[changed] = source
            mask = np.zeros(n, dtype=bool)
            mask[changed[rng.random(len(changed)) < 0.2]] = True  # some become missing
            column = column.take(pa.array(index))
            if name != "tags":
                column = pc.if_else(pa.array(mask), pa.nulls(n, column.type), column)
        columns[name] = column
    changed_table = pa.table(columns).filter(pa.array(keep))
    return sort_by_id(pa.concat_tables([changed_table, add.select(base.column_names)]))


def _new_events(subscribers: pa.Table, rng: np.random.Generator, count: int, first: datetime,
                last: datetime, seed: int) -> pa.Table:
    """`count` events of random subscribers, dated between `first` and `last`."""
    events = generate_events(subscribers, as_of=AS_OF, seed=seed + 1, per_subscriber=3.0)
    if events.num_rows == 0 or count == 0:
        return events.slice(0, 0)
    picked = events.take(pa.array(rng.integers(0, events.num_rows, count)))
    span = int((last - first).total_seconds())
    seconds = rng.integers(0, max(span, 1), count) + int(first.timestamp())
    at = pa.array(seconds.astype("datetime64[s]").astype("datetime64[us]"), pa.timestamp("us"))
    ids = pa.array([f"evt_new_{seed}_{i}" for i in range(count)], pa.string())
    return picked.set_column(0, "event_id", ids).set_column(picked.schema.get_field_index("occurred_at"),
                                                           "occurred_at", at)


def _incremental(project, tmp: Path, *, base_flags, base_record, as_of, snapshot_file, event_files,
                 engine="duckdb"):
    def table_of(files, columns, ids, what, schema, required):
        table = pa.concat_tables([pq.read_table(f) for f in files]) if files else schema.empty_table()
        if ids is not None:
            table = table.filter(pc.is_in(table.column("subscriber_id"), value_set=ids))
        return conform(table, schema, columns, required, what=what)

    def subscribers(columns, ids):
        return table_of([snapshot_file], columns, ids, "subscriber", project.catalog.subscriber_schema(),
                        ["subscriber_id"])

    def events(columns, ids):
        table = table_of(event_files, columns, ids, "event", project.catalog.event_schema(), REQUIRED_EVENT_FIELDS)
        return table.filter(pc.less_equal(table.column("occurred_at"), pa.scalar(as_of, pa.timestamp("us"))))

    current_ids = sort_by_id(pq.read_table(snapshot_file, columns=["subscriber_id"])).column("subscriber_id")
    return evaluate_incremental(
        project, as_of, engine=engine, base_flags=base_flags, base=base_record, snapshot_file=snapshot_file,
        event_files=event_files, current_ids=current_ids.combine_chunks(), read_subscribers=subscribers,
        read_events=events,
    )


def _write_snapshot(table: pa.Table, file: Path) -> None:
    """A snapshot file and its row hashes, as ingest writes them."""
    import duckdb

    pq.write_table(table, file)
    with duckdb.connect() as con:
        write_row_hashes(con, file, row_hashes_path(file))


def _full(project, snapshot_file, event_files, as_of, engine="duckdb"):
    subscribers = pq.read_table(snapshot_file)
    events = pa.concat_tables([pq.read_table(f) for f in event_files])
    events = events.filter(pc.less_equal(events.column("occurred_at"), pa.scalar(as_of, pa.timestamp("us"))))
    return evaluate_flags(project, subscribers, events, as_of, engine=engine)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(40, 400),
    change=st.sampled_from([0.0, 0.01, 0.1, 0.4]),
    delete=st.sampled_from([0.0, 0.02, 0.2]),
    added=st.integers(0, 30),
    new_events=st.integers(0, 60),
    hours=st.sampled_from([0, 1, 5, 24, 24 * 7, 24 * 40, 24 * 400]),
    edit=st.booleans(),
    same_snapshot=st.booleans(),
    engine=st.sampled_from(["duckdb", "polars"]),
)
def test_incremental_equals_full(tmp_path_factory, seed, n, change, delete, added, new_events, hours, edit,
                                 same_snapshot, engine):
    tmp = tmp_path_factory.mktemp("incremental")
    rng = np.random.default_rng(seed)
    project = _project(tmp, 30, 1)
    a0 = AS_OF + timedelta(hours=int(rng.integers(0, 48)))
    a1 = a0 + timedelta(hours=hours, minutes=int(rng.integers(0, 60)) if hours else 0)

    base = generate_subscribers(n, as_of=AS_OF, seed=seed)
    base_file = tmp / "s0.parquet"
    _write_snapshot(base, base_file)
    events0 = tmp / "e0.parquet"
    pq.write_table(generate_events(base, as_of=AS_OF, seed=seed), events0)
    base_flags = _full(project, base_file, [events0], a0, engine)
    record = EvaluationRecord.of(project, a0, base_file, [events0])

    if same_snapshot:
        snapshot_file = base_file
    else:
        extra = generate_subscribers(n + added, as_of=AS_OF, seed=seed + 7).slice(n, added)
        extra = extra.set_column(0, "subscriber_id", pc.binary_join_element_wise(
            "new_", extra.column("subscriber_id"), ""))
        snapshot_file = tmp / "s1.parquet"
        _write_snapshot(_changed_snapshot(base, rng, change, delete, extra), snapshot_file)
    files = [events0]
    if new_events:
        everyone = pq.read_table(snapshot_file)
        events1 = tmp / "e1.parquet"
        pq.write_table(_new_events(everyone, rng, new_events, a0 - timedelta(days=3), a1 + timedelta(days=1),
                                   seed), events1)
        files.append(events1)
    if edit:  # another definition for a few keys: they and their readers are evaluated in full
        other = _project(tmp, 30, 2)
        segments = dict(project.segments)
        for key in sorted(segments)[::9]:
            segments[key] = other.segments[key]
        project = project.model_copy(update={"segments": segments})
        if any(ref not in project.segments for s in project.segments.values() for ref in s.references()):
            pytest.skip("edited references point nowhere")

    result = _incremental(project, tmp, base_flags=base_flags, base_record=record, as_of=a1,
                          snapshot_file=snapshot_file, event_files=files, engine=engine)
    expected = _full(project, snapshot_file, files, a1, engine)
    if result is None:  # too many affected: the caller evaluates in full
        assert change >= 0.4 or delete >= 0.2 or hours >= 24 * 40 or edit or added > 0 or new_events > 0
        return
    flags, _how = result
    assert flags.column_names == expected.column_names
    for name in expected.column_names:
        assert flags.column(name).equals(expected.column(name)), name


def _rerun(project, tmp: Path, base_file: Path, snapshot_file: Path, events: Path):
    """Full flags of `base_file` at AS_OF, then an incremental evaluation of
    `snapshot_file` at the same AS_OF from them: (base flags, flags, plan)."""
    flags = _full(project, base_file, [events], AS_OF)
    result = _incremental(project, tmp, base_flags=flags, base_record=EvaluationRecord.of(
        project, AS_OF, base_file, [events]), as_of=AS_OF, snapshot_file=snapshot_file, event_files=[events])
    assert result is not None
    return flags, *result


def test_nothing_changed_re_evaluates_nobody(tmp_path):
    project = _project(tmp_path, 30, 1)
    base = generate_subscribers(300, as_of=AS_OF, seed=3)
    snapshot = tmp_path / "s.parquet"
    _write_snapshot(base, snapshot)
    events = tmp_path / "e.parquet"
    pq.write_table(generate_events(base, as_of=AS_OF, seed=3), events)
    flags, again, how = _rerun(project, tmp_path, snapshot, snapshot, events)
    assert how.affected == 0 and not how.full_segments
    assert again.equals(flags)


def test_a_changed_row_is_found_by_its_hash(tmp_path):
    """Row hashes (written at ingest) mark a subscriber whose row changed in any
    column, even one no definition reads; the flags equal a full evaluation.
    Without the hashes of both snapshots the run evaluates in full."""
    project = _project(tmp_path, 30, 1)
    base = generate_subscribers(300, as_of=AS_OF, seed=5)
    base_file, snapshot_file = tmp_path / "s0.parquet", tmp_path / "s1.parquet"
    _write_snapshot(base, base_file)
    unread = "country"
    assert unread not in build_plan(project, AS_OF).subscriber_fields
    names = base.column(unread).to_pylist()
    names[7] = (names[7] or "") + " (renamed)"
    renamed = base.set_column(base.schema.get_field_index(unread), unread, pa.array(names))
    _write_snapshot(renamed, snapshot_file)
    events = tmp_path / "e.parquet"
    pq.write_table(generate_events(base, as_of=AS_OF, seed=5), events)
    flags, again, how = _rerun(project, tmp_path, base_file, snapshot_file, events)
    assert how.affected == 1
    assert again.equals(_full(project, snapshot_file, [events], AS_OF))

    row_hashes_path(base_file).unlink()
    record = EvaluationRecord.of(project, AS_OF, base_file, [events])
    assert _incremental(project, tmp_path, base_flags=flags, base_record=record, as_of=AS_OF,
                        snapshot_file=snapshot_file, event_files=[events]) is None


def test_row_hashes_tell_apart_values_that_look_alike(tmp_path):
    """Every pair of rows here differs in one way a definition can see: their hashes differ."""
    import duckdb

    rows = [
        {"subscriber_id": "s", "tags": None, "city": "a", "state": "b", "age": 1},
        {"subscriber_id": "s", "tags": [], "city": "a", "state": "b", "age": 1},
        {"subscriber_id": "s", "tags": [None], "city": "a", "state": "b", "age": 1},
        {"subscriber_id": "s", "tags": [""], "city": "a", "state": "b", "age": 1},
        {"subscriber_id": "s", "tags": ["a", "b"], "city": "a", "state": "b", "age": 1},
        {"subscriber_id": "s", "tags": ["b", "a"], "city": "a", "state": "b", "age": 1},
        {"subscriber_id": "s", "tags": ["ab"], "city": "a", "state": "b", "age": 1},
        {"subscriber_id": "s", "tags": None, "city": "b", "state": "a", "age": 1},
        {"subscriber_id": "s", "tags": None, "city": None, "state": "a", "age": 1},
        {"subscriber_id": "s", "tags": None, "city": "a", "state": None, "age": 1},
        {"subscriber_id": "s", "tags": None, "city": "A", "state": "b", "age": 1},
        {"subscriber_id": "s", "tags": None, "city": "a\"", "state": "b", "age": 1},
        {"subscriber_id": "s", "tags": None, "city": "a", "state": "b", "age": None},
        {"subscriber_id": "s", "tags": None, "city": "a", "state": "b", "age": 0},
    ]
    hashes = []
    with duckdb.connect() as con:
        for i, row in enumerate(rows):
            file = tmp_path / f"s{i}.parquet"
            pq.write_table(pa.Table.from_pylist([row], schema=pa.schema([
                ("subscriber_id", pa.string()), ("tags", pa.list_(pa.string())), ("city", pa.string()),
                ("state", pa.string()), ("age", pa.int64())])), file)
            write_row_hashes(con, file, row_hashes_path(file))
            hashes.append(pq.read_table(row_hashes_path(file)).column("row_hash")[0].as_py())
    assert len(set(hashes)) == len(rows)


def _query(paths, sql, run_id: str | None = None):
    """The rows of `sql`, with `run_id` (if given) read as "this run", sorted again
    after that: each copy's run id is random, so it sorts anywhere among the others."""
    import duckdb

    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        rows = con.execute(sql).fetchall()
    named = [tuple("this run" if run_id is not None and v == run_id else v for v in row) for row in rows]
    return named if run_id is None else sorted(named, key=repr)


def test_incremental_run_publishes_what_a_full_run_does(tmp_path):
    """Through the run's steps: an hourly run on a snapshot with 2% of subscribers
    changed and new events, incremental in one copy of the data and `--full` in
    another, publishes the same membership, history and recipients."""
    import shutil

    from pipelines.core.settings import Paths
    from pipelines.lake.snapshots import list_snapshots
    from pipelines.sample_data import write_landing
    from pipelines.sample_data.changes import write_changed_landing

    defs = write_definitions(tmp_path / "defs", 40, 3)
    paths = Paths(defs=defs, data=tmp_path / "a")
    write_landing(paths, as_of=AS_OF, n_subscribers=3000, fmt="parquet")
    first = AS_OF + timedelta(hours=1)
    run(paths, first)
    changed = AS_OF + timedelta(hours=2)
    write_changed_landing(paths, as_of=AS_OF, changed_as_of=changed, since=first, n_subscribers=3000, share=0.02)
    other = Paths(defs=defs, data=tmp_path / "b")
    shutil.copytree(paths.data, other.data)

    later = changed + timedelta(minutes=30)
    summary = run(paths, later)
    assert summary.ctx.mode.startswith("incremental:")
    # ingest wrote each snapshot's row hashes: the run compared those, not the columns
    assert all(row_hashes_path(s.file).is_file() for s in list_snapshots(paths))
    summary_full = run(other, later, full=True)
    assert summary_full.ctx.mode == "full"
    run_id = summary.ctx.params.run_id
    for sql in (
        "SELECT segment, subscriber_id FROM segment_membership ORDER BY ALL",
        "SELECT * FROM segment_membership_history ORDER BY ALL",
        "SELECT * FROM membership_changes ORDER BY ALL",
        "SELECT * FROM segment_sizes ORDER BY ALL",
        "SELECT * EXCLUDE (run_id) FROM recipients ORDER BY ALL",
        "SELECT segment, members, entered, exited FROM segments ORDER BY ALL",
    ):
        # the two copies' second runs have their own run ids: compared as one
        assert _query(paths, sql, run_id) == _query(other, sql, summary_full.ctx.params.run_id), sql
    assert _query(paths, f"SELECT count(*) FROM membership_changes WHERE run_id = '{run_id}'")[0][0] > 0


def test_flags_of_older_semantics_are_not_reused(tmp_path):
    """A base version evaluated by code that decided membership differently
    (another SEMANTICS_VERSION, or none recorded) is not built on: the run is full."""
    import json

    from pipelines.core.settings import SEMANTICS_VERSION, Paths
    from pipelines.engine import incremental
    from pipelines.publish.state import current_state
    from pipelines.sample_data import write_landing

    paths = Paths(defs=write_definitions(tmp_path / "defs", 5, 3), data=tmp_path / "data")
    write_landing(paths, as_of=AS_OF, n_subscribers=200, fmt="parquet")
    first = AS_OF + timedelta(hours=1)
    run(paths, first)
    record_file = current_state(paths).version_dir / incremental.RECORD_FILE
    assert json.loads(record_file.read_text())["semantics"] == SEMANTICS_VERSION
    later = first + timedelta(hours=1)
    summary = run(paths, later)
    assert summary.ctx.mode.startswith("incremental:")

    # The published flags as an older version of the code recorded them.
    record_file = current_state(paths).version_dir / incremental.RECORD_FILE
    record = json.loads(record_file.read_text())
    record_file.unlink()  # a hard link to the run's workspace file: not written through
    record_file.write_text(json.dumps({**record, "semantics": "2"}))
    latest = later + timedelta(hours=1)
    summary = run(paths, latest)
    assert summary.ctx.mode == "full"


@pytest.mark.parametrize("engine", ["duckdb", "polars"])
@pytest.mark.parametrize("field", ["delivered_at", "occurred_at"])
def test_a_window_inside_an_event_where_moves_with_the_clock(tmp_path, field, engine):
    """Issue 18 (6): a buyer whose purchase was delivered in the last day at 11-02 is
    no longer one at 11-04, though neither the snapshot nor the events changed."""
    from pipelines.segments.fields import FieldCatalog
    from pipelines.segments.model import EventFilter, FieldFilter, Group, Project, Segment

    catalog = FieldCatalog.with_custom({}, {"delivered_at": "timestamp"})
    recent = EventFilter(event="purchase", op="performed",
                         where=(FieldFilter(field=field, op="in_last_days", value=1),))
    not_recent = recent.model_copy(update={"op": "not_performed"})
    project = Project(catalog=catalog, segments={
        key: Segment(key=key, name=key, groups=(Group(filters=(f,)),))
        for key, f in (("recent_buyers", recent), ("not_recent_buyers", not_recent))})
    ids = [f"s{i}" for i in range(10)]
    snapshot = tmp_path / "s.parquet"
    pq.write_table(pa.Table.from_pylist([{"subscriber_id": i, "email": f"{i}@x.org", "status": "active"}
                                         for i in ids], schema=catalog.subscriber_schema()), snapshot)
    events = tmp_path / "e.parquet"
    pq.write_table(pa.Table.from_pylist([{
        "event_id": "e1", "subscriber_id": "s1", "event": "purchase",
        "occurred_at": datetime(2026, 11, 1, 18), "delivered_at": datetime(2026, 11, 1, 18),
    }], schema=catalog.event_schema()), events)
    first, later = datetime(2026, 11, 2), datetime(2026, 11, 4)
    base_flags = _full(project, snapshot, [events], first, engine)
    assert base_flags.column("segment:recent_buyers").to_pylist()[1] is True
    result = _incremental(project, tmp_path, base_flags=base_flags,
                          base_record=EvaluationRecord.of(project, first, snapshot, [events]), as_of=later,
                          snapshot_file=snapshot, event_files=[events], engine=engine)
    assert result is not None
    flags, how = result
    assert how.affected == 1
    assert flags.equals(_full(project, snapshot, [events], later, engine))
    assert not any(flags.column("segment:recent_buyers").to_pylist())
