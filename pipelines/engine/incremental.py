"""Incremental evaluation: re-evaluate only the subscribers whose inputs changed.

A subscriber's membership depends only on their own snapshot row, their own
events, the run's `as_of` and (through segment filters) their own membership
in other segments. So, starting from the flags of the version a run builds on
(its *base*), it is exact to evaluate every segment on the **affected**
subscribers only and keep everyone else's base flags, where affected means:

1. their row changed: a new subscriber, or a row whose hash (written at
   ingest, lake/parts.py: write_row_hashes) differs from the base snapshot's;
2. a time-relative field filter on their row may have flipped: its value is one
   its operator's `crossing` (segments/operators.py) names, e.g. for `in_last_days N`
   on field F, F in [base_as_of - N, as_of - N) or F in (base_as_of, as_of];
3. an event of theirs that some aggregate counts may have changed sides: its
   `occurred_at` is in (base_as_of, as_of] (it became <= as_of), or in
   [base_as_of - N, as_of - N) for an aggregate window of N days (it left), or a
   time-relative `where` filter on it may have flipped (the edges of 2.);
4. they have an event in a file ingested after the base was evaluated.

Subscribers missing from the new snapshot are dropped. A segment whose
definition changed (or is new) is evaluated in full, together with every
segment that reads it; a change of declared fields, of the lake's older event
files, a snapshot without row hashes or a base without an evaluation record
(`EvaluationRecord`, the version's `evaluation.json`) means a full evaluation.
`tests/test_incremental.py` checks incremental == full.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlglot import exp

from ..core.duck import parquet_scan, scratch_connection
from ..core.flags import ID, align_ids, bitmap, bools, flag_keys, move_positions, moved, one_array
from ..core.settings import SEMANTICS_VERSION
from ..lake.layout import row_hashes_path
from ..segments.model import FieldFilter, Project
from ..segments.operators import OPERATORS, between_open, window_start
from ..segments.plan import build_plan, segment_column
from ..segments.project_rules import dependents_of
from ..segments.to_sql import string_literal, timestamp_literal
from ..segments.utc import naive_utc
from . import evaluate_flags

RECORD_FILE = "evaluation.json"
ROW_HASH = "row_hash"
# Above this share of affected subscribers, a full evaluation is as cheap.
MAX_AFFECTED_SHARE = 0.5
# Fewer affected subscribers than this are evaluated without per-distinct-value encoding.
ENCODE_FROM_ROWS = 50_000


def catalog_fingerprint(project: Project) -> str:
    catalog = project.catalog
    text = json.dumps([sorted(catalog.subscriber.items()), sorted(catalog.event.items())])
    return hashlib.sha256(text.encode()).hexdigest()


def _relative(path: Path | str, root: Path | None) -> str:
    """A lake file's path relative to the data folder (a moved folder still matches)."""
    path = Path(path).absolute()
    if root is not None and path.is_relative_to(Path(root).absolute()):
        return path.relative_to(Path(root).absolute()).as_posix()
    return str(path)


@dataclass
class EvaluationRecord:
    """What a set of flags was computed from. Lake paths are relative to the
    data folder when they are inside it (`root`)."""

    as_of: str
    snapshot_file: str
    event_files: list[str]
    definitions: dict[str, str]  # segment key -> definition_sha256
    catalog: str
    semantics: str = ""  # SEMANTICS_VERSION (records written before it existed: "")

    @classmethod
    def of(cls, project: Project, as_of: datetime, snapshot_file: Path | str,
           event_files: Iterable[Path | str], root: Path | None = None) -> EvaluationRecord:
        return cls(
            as_of=naive_utc(as_of).isoformat(),
            snapshot_file=_relative(snapshot_file, root),
            event_files=sorted(_relative(f, root) for f in event_files),
            definitions={key: s.definition_sha256() for key, s in sorted(project.segments.items())},
            catalog=catalog_fingerprint(project),
            semantics=SEMANTICS_VERSION,
        )

    def resolved(self, root: Path | None) -> EvaluationRecord:
        """The same record with absolute paths."""
        def absolute(p: str) -> str:
            return str((Path(root) / p).absolute()) if root is not None and not Path(p).is_absolute() else p

        return EvaluationRecord(self.as_of, absolute(self.snapshot_file), [absolute(f) for f in self.event_files],
                                self.definitions, self.catalog, self.semantics)

    def save(self, target: Path) -> None:
        target.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")

    @classmethod
    def load(cls, source: Path) -> EvaluationRecord | None:
        if not source.is_file():
            return None
        return cls(**json.loads(source.read_text(encoding="utf-8")))


@dataclass
class IncrementalPlan:
    """How a run was evaluated incrementally."""

    affected: int  # subscribers re-evaluated
    full_segments: list[str]  # evaluated over every subscriber (definitions changed)


def segments_to_recompute(project: Project, base: EvaluationRecord) -> list[str]:
    """Changed or new segments, and every segment that reads one of them (transitively)."""
    changed = {key for key, seg in project.segments.items()
               if base.definitions.get(key) != seg.definition_sha256()}
    references = {key: seg.references() for key, seg in project.segments.items()}
    return sorted(changed.union(*(dependents_of(references, key) for key in changed)))


def _source(paths: Sequence[str], alias: str, *, by_name: bool = False) -> exp.Expr:
    """`read_parquet([...]) AS alias` for a FROM or JOIN."""
    return exp.Table(this=parquet_scan(paths, union_by_name=by_name),
                     alias=exp.TableAlias(this=exp.to_identifier(alias)))


def _col(name: str, table: str) -> exp.Expr:
    return exp.column(exp.to_identifier(name, quoted=True), table=table)


def _time_relative(filters: Iterable[FieldFilter]) -> list[FieldFilter]:
    return list(dict.fromkeys(f for f in filters if OPERATORS[f.op].crossing is not None))


def _crossed(filters: Sequence[FieldFilter], types: dict[str, str], table: str, base_as_of: datetime,
             as_of: datetime) -> list[exp.Expr]:
    """Conditions on `table`'s rows: a time-relative filter's result may have changed."""
    out = []
    for f in filters:
        crossing = OPERATORS[f.op].crossing
        assert crossing is not None
        column = _col(f.field, table)
        if types[f.field] == "date":
            column = exp.cast(column, exp.DataType.build("TIMESTAMP"))
        out.append(crossing(column, f.value, base_as_of, as_of))
    return out


def affected_query(project: Project, base: EvaluationRecord, as_of: datetime, snapshot_file: str,
                   event_files: Sequence[str]) -> exp.Select | None:
    """One query over the lake's Parquet files: the sorted ids of affected subscribers
    (None: something it cannot reason about, evaluate in full). Paths are absolute."""
    base_as_of = datetime.fromisoformat(base.as_of)
    plan = build_plan(project, as_of)
    catalog = project.catalog
    parts: list[exp.Expr] = []

    # 1. Changed or new rows: a join of the two snapshots' (id, hash) files. A change
    # in a column no definition reads marks the subscriber too (more work, same result).
    if snapshot_file != base.snapshot_file:
        now, before = row_hashes_path(snapshot_file), row_hashes_path(base.snapshot_file)
        if not (now.is_file() and before.is_file()):
            return None
        changed = exp.NEQ(this=_col(ROW_HASH, "c"), expression=_col(ROW_HASH, "p"))
        parts.append(
            exp.select(_col(ID, "c"))
            .from_(_source([str(now)], "c"), copy=False)
            .join(_source([str(before)], "p"),
                  on=exp.EQ(this=_col(ID, "c"), expression=_col(ID, "p")), join_type="left", copy=False)
            .where(exp.or_(exp.Is(this=_col(ID, "p"), expression=exp.Null()), changed, copy=False),
                   copy=False)
        )

    # 2. Time-relative field filters whose result may have moved over the subscriber's value.
    stored = set(pq.read_schema(snapshot_file).names)
    relative = [f for f in _time_relative(f for key in plan.segment_keys
                                          for f in project.segments[key].field_filters()) if f.field in stored]
    if relative:
        crossed = _crossed(relative, catalog.subscriber, "s", base_as_of, as_of)
        parts.append(exp.select(_col(ID, "s")).from_(_source([snapshot_file], "s"), copy=False).where(
            exp.or_(*crossed, copy=False), copy=False))

    # 3. and 4. Events that changed sides of a window or of as_of, and new files.
    if plan.aggregates:
        counted = set(base.event_files)
        if counted - set(event_files):
            return None  # a file the base counted is gone: nothing to compare with
        old_files = [f for f in event_files if f in counted]
        new_files = [f for f in event_files if f not in counted]
        names = exp.In(this=_col("event", "e"), expressions=[string_literal(n) for n in plan.event_names])
        occurred = _col("occurred_at", "e")
        moved = [between_open(occurred, base_as_of, as_of, low_open=True, high_open=False)]
        for days in sorted({f.in_last_days for f in plan.aggregates.values() if f.in_last_days is not None}):
            moved.append(between_open(occurred.copy(), window_start(base_as_of, days), window_start(as_of, days),
                                      low_open=False, high_open=True))
        if old_files:
            parts.append(exp.select(_col("subscriber_id", "e")).from_(
                _source(old_files, "e"), copy=False).where(
                exp.and_(names, exp.or_(*moved, copy=False), copy=False), copy=False))
            # `where` filters that depend on the clock: the events of this name whose value crossed.
            stored_events = set().union(*(pq.read_schema(f).names for f in old_files))
            for aggregate in plan.aggregates.values():
                # A field no file stores is missing everywhere: its result cannot change.
                relative = [w for w in _time_relative(aggregate.where) if w.field in stored_events]
                if not relative:
                    continue
                crossed = _crossed(relative, catalog.event, "e", base_as_of, as_of)
                parts.append(exp.select(_col("subscriber_id", "e")).from_(
                    _source(old_files, "e", by_name=True), copy=False).where(
                    exp.and_(exp.EQ(this=_col("event", "e"), expression=string_literal(aggregate.event)),
                             exp.or_(*crossed, copy=False), copy=False), copy=False))
        if new_files:
            parts.append(exp.select(_col("subscriber_id", "e")).from_(
                _source(new_files, "e"), copy=False).where(
                exp.and_(names.copy(), exp.LTE(this=occurred.copy(), expression=timestamp_literal(as_of)),
                         copy=False), copy=False))

    if not parts:
        return exp.select(exp.alias_(exp.cast(exp.Null(), exp.DataType.build("VARCHAR")), ID)).where(
            exp.false())
    union = parts[0] if len(parts) == 1 else exp.union(*parts, distinct=True, copy=False)
    return (
        exp.select(exp.column(ID, table="a")).distinct()
        .from_(exp.Subquery(this=union, alias=exp.TableAlias(this=exp.to_identifier("a"))), copy=False)
        .where(exp.Is(this=exp.column(ID, table="a"), expression=exp.Not(this=exp.Null())), copy=False)
        .order_by(exp.column(ID, table="a"), copy=False)
    )


def merge_flags(base_flags: pa.Table, current_ids: pa.Array, update: pa.Table,
                full: pa.Table | None) -> pa.Table:
    """Flags over `current_ids` (sorted): the base's flags, with the rows of
    `update` (flags of a subset of subscribers, every segment) replacing theirs,
    and the columns of `full` (flags over every current subscriber) replacing
    whole segments. A subscriber not in the base is in `update` (it is new)."""
    keys = flag_keys(update)
    n = len(current_ids)
    aligned = align_ids(base_flags.column(ID), current_ids)
    # The rows of the updated subscribers: both id columns are sorted and unique (the
    # update read its rows from the snapshot), so a mask is enough, cheaper than a join.
    updated = pc.is_in(current_ids, value_set=one_array(update.column(ID)))
    at = np.flatnonzero(updated.to_numpy(zero_copy_only=False))
    if len(at) != update.num_rows:
        raise ValueError("updated subscribers are missing from the snapshot")
    full_keys = set(flag_keys(full)) if full is not None else set()
    # numpy on unpacked bitmaps (core.flags.bools): Arrow's take and filter on
    # boolean arrays cost several times more. The base column moves to the current
    # rows when subscribers came or went, then the updated rows are written over it.
    if aligned is not None:
        base_rows = move_positions(aligned[1])
    columns = [current_ids]
    for key in keys:
        name = segment_column(key)
        if full is not None and key in full_keys:
            columns.append(full.column(name))
            continue
        new = bools(update.column(name)) if update.num_rows else np.zeros(0, dtype=bool)
        if name not in base_flags.column_names:
            merged = np.zeros(n, dtype=bool)
        elif aligned is None:
            before = base_flags.column(name)
            base_values = bools(before)
            if np.array_equal(base_values[at], new):
                columns.append(one_array(before))  # nobody's membership of this segment changed
                continue
            merged = base_values.copy()
        else:
            merged = moved(bools(base_flags.column(name)), base_rows)
        merged[at] = new
        columns.append(bitmap(merged))
    return pa.Table.from_arrays(columns, names=[ID, *(segment_column(k) for k in keys)])


def subproject(project: Project, keys: Iterable[str]) -> Project:
    """The segments `keys` and every segment they read (transitively)."""
    wanted, todo = set(keys), list(keys)
    while todo:
        for ref in project.segments[todo.pop()].references():
            if ref not in wanted:
                wanted.add(ref)
                todo.append(ref)
    return Project(catalog=project.catalog, segments={k: s for k, s in project.segments.items() if k in wanted},
                   audiences={})


Reader = Callable[[list[str], "pa.Array | None"], pa.Table]


def evaluate_incremental(project: Project, as_of: datetime, *, engine: str, base_flags: pa.Table,
                         base: EvaluationRecord, snapshot_file: Path | str, event_files: Sequence[Path | str],
                         current_ids: pa.Array, read_subscribers: Reader, read_events: Reader,
                         root: Path | None = None) -> tuple[pa.Table, IncrementalPlan] | None:
    """The run's flags from the base's, or None when a full evaluation is needed
    (or cheaper). `current_ids` are the snapshot's ids, sorted; the readers give
    the typed columns asked for (and the rows of the given subscribers only);
    `root` is the data folder the record's relative paths are in."""
    base = base.resolved(root)
    as_of = naive_utc(as_of)
    if base.catalog != catalog_fingerprint(project) or datetime.fromisoformat(base.as_of) > as_of:
        return None
    query = affected_query(project, base, as_of, str(Path(snapshot_file).absolute()),
                           [str(Path(f).absolute()) for f in event_files])
    if query is None:
        return None
    with scratch_connection() as con:
        affected = con.sql(query.sql(dialect="duckdb")).to_arrow_table().column(ID).combine_chunks()
    if len(affected) > MAX_AFFECTED_SHARE * max(len(current_ids), 1):
        return None
    plan = build_plan(project, as_of)
    update = evaluate_flags(project, read_subscribers(plan.subscriber_fields, affected),
                            read_events(plan.event_fields, affected), as_of, engine=engine,
                            encode=len(affected) >= ENCODE_FROM_ROWS)
    recompute = segments_to_recompute(project, base)
    full = None
    if recompute:
        sub = subproject(project, recompute)
        sub_plan = build_plan(sub, as_of)
        full = evaluate_flags(sub, read_subscribers(sub_plan.subscriber_fields, None),
                              read_events(sub_plan.event_fields, None), as_of, engine=engine)
        full = full.select([ID, *(segment_column(k) for k in recompute)])
    flags = merge_flags(base_flags, current_ids, update, full)
    return flags, IncrementalPlan(affected=update.num_rows, full_segments=recompute)

