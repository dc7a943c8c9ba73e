"""Membership flags of every segment on the run's snapshot (core/flags.py): incremental
from the base version's flags when it can, else in full, one subscriber-id range at a time."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa

from .. import engine
from ..core.flags import sort_by_id
from ..core.settings import SEMANTICS_VERSION, Paths, range_rows
from ..engine.incremental import RECORD_FILE, EvaluationRecord, evaluate_incremental
from ..errors import UserError
from ..lake.snapshots import (
    SnapshotInfo,
    event_part_files,
    read_events,
    read_rows,
    read_snapshot,
    snapshot_at_or_before,
    snapshot_ranges,
)
from ..publish.history_files import read_flags
from ..publish.state import current_state, history_base
from ..segments.model import Project
from ..segments.plan import build_plan
from .params import RunContext

_IDS = ("subscriber_id", "event_id")


def run_snapshot(paths: Paths, ctx: RunContext) -> SnapshotInfo:
    """The snapshot ingest chose for this run (a UserError if the lake changed since)."""
    snapshot = snapshot_at_or_before(paths, ctx.params.as_of)
    if snapshot is None or str(snapshot.file) != ctx.snapshot_file:
        raise UserError("the lake changed during the run; start the run again")
    return snapshot


def _incremental_flags(paths: Paths, ctx: RunContext, project: Project, snapshot: SnapshotInfo):
    """Flags from the base version's, re-evaluating only affected subscribers
    (engine/incremental.py); None when the run must (or had better) evaluate in full."""
    previous = current_state(paths)
    if previous is None or ctx.params.as_of < previous.as_of:
        return None
    base, _ = history_base(previous, ctx.params.as_of)
    if base is None:
        return None
    record = EvaluationRecord.load(base.version_dir / RECORD_FILE)
    if record is None or record.semantics != SEMANTICS_VERSION:  # flags of older code: evaluate in full
        return None
    base_flags = read_flags(base.version_dir)
    if base_flags is None:
        return None
    as_of = ctx.params.as_of

    def subscribers(columns: list[str], ids):
        if ids is not None:  # the affected few: DuckDB reads just their rows
            return sort_by_id(read_rows([snapshot.file], project.catalog.subscriber, columns, ids))
        return sort_by_id(read_snapshot(snapshot, project.catalog, columns, [c for c in columns if c not in _IDS]))

    def events(columns: list[str], ids):
        if ids is not None:
            return read_rows(event_part_files(paths), project.catalog.event, columns, ids, as_of)
        return read_events(paths, project.catalog, as_of, columns, [c for c in columns if c not in _IDS])

    current_ids = subscribers(["subscriber_id"], None).column("subscriber_id").combine_chunks()
    return evaluate_incremental(
        project, as_of, engine=ctx.params.engine, base_flags=base_flags, base=record,
        snapshot_file=snapshot.file, event_files=event_part_files(paths), current_ids=current_ids,
        read_subscribers=subscribers, read_events=events, root=Path(paths.data),
    )


def evaluate_flags(paths: Paths, ctx: RunContext, project: Project) -> pa.Table:
    """Unless the run is `--full`, the flags of the version it builds on are reused for
    every subscriber whose inputs did not change (`ctx.mode` says which)."""
    snapshot = run_snapshot(paths, ctx)
    if not ctx.params.full:
        incremental = _incremental_flags(paths, ctx, project, snapshot)
        if incremental is not None:
            flags, how = incremental
            ctx.mode = (f"incremental: {how.affected:,} subscriber(s) re-evaluated, "
                        f"{len(how.full_segments)} segment(s) in full")
            return flags
    plan = build_plan(project, ctx.params.as_of)
    subscriber_dicts = [c for c in plan.subscriber_fields if c not in _IDS]
    event_dicts = [c for c in plan.event_fields if c not in _IDS]
    ranges = snapshot_ranges(snapshot, range_rows())
    # A large snapshot is evaluated one id range at a time, so memory is bounded by
    # a range, not the snapshot: every predicate reads only its own subscriber's row,
    # events and memberships, and ranges come in id order, so the flags concatenate sorted.
    def read_range(id_range):
        subscribers = sort_by_id(read_snapshot(snapshot, project.catalog, plan.subscriber_fields, subscriber_dicts,
                                               id_range=id_range))
        events = read_events(paths, project.catalog, ctx.params.as_of, plan.event_fields, event_dicts,
                             id_range=id_range)
        return subscribers, events

    if len(ranges) <= 1:
        subscribers, events = read_range(None)
        return engine.evaluate_flags(project, subscribers, events, ctx.params.as_of, engine=ctx.params.engine)
    # The next range is read on a second thread while this one is evaluated (Parquet
    # decoding releases the GIL): two ranges in memory at most.
    parts = []
    with ThreadPoolExecutor(max_workers=1) as reader:
        upcoming = reader.submit(read_range, ranges[0])
        for index in range(len(ranges)):
            subscribers, events = upcoming.result()
            if index + 1 < len(ranges):
                upcoming = reader.submit(read_range, ranges[index + 1])
            parts.append(engine.evaluate_flags(project, subscribers, events, ctx.params.as_of,
                                               engine=ctx.params.engine))
            del subscribers, events
    return pa.concat_tables(parts)
