"""One refresh run, as a sequence of library steps.

The Dagster assets in `pipelines/defs/` are thin wrappers over these steps;
`run_steps` chains them without Dagster for the benchmark. Steps hand data to
each other through a run workspace (`DATA/work/<run_id>/`), so each step is
a separate, restartable unit in Dagster and nothing is published until the
last step swaps the new version in.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .clock import format_ts, parse_as_of, refuse_future
from .errors import UserError
from .segments.model import Project
from .settings import IngestLimits, Paths

# A snapshot that loses more than this share of the previous one is held back.
HOLD_DROP_SHARE = 0.5


@dataclass
class RunParams:
    run_id: str
    as_of: datetime
    started_at: datetime
    engine: str = "duckdb"
    force: bool = False
    full: bool = False
    allow_future: bool = False  # accept an as_of more than clock.FUTURE_TOLERANCE after started_at
    range_rows: int | None = None  # subscribers evaluated at a time (default: settings.range_rows)
    # A scheduled tick that a later run overtook (the sensor queued one first) has
    # nothing to do: it ends as unchanged instead of failing on "history only moves forward".
    overtaken_ok: bool = False


@dataclass
class RunContext:
    """What the first step decided, read by every later step of the same run."""

    params: RunParams
    snapshot_file: str = ""
    snapshot_name: str = ""
    snapshot_at: str = ""
    snapshot_rows: int = 0
    fingerprint: str = ""
    parent_version: str | None = None
    unchanged_run_id: str | None = None  # set when the same inputs were already published
    ingested: list[str] = field(default_factory=list)
    quarantined_rows: int = 0
    row_counts: dict[str, list[int]] = field(default_factory=dict)  # new file -> [loaded, quarantined]
    warnings: list[str] = field(default_factory=list)

    @property
    def unchanged(self) -> bool:
        return self.unchanged_run_id is not None


class RunWorkspace:
    """Scratch space of one run: `DATA/work/<run_id>/`. Removed when the next run starts."""

    def __init__(self, paths: Paths, run_id: str):
        self.dir = Path(paths.data) / "work" / run_id

    def save_table(self, name: str, table: pa.Table) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        target = self.dir / f"{name}.parquet"
        pq.write_table(table, target, compression="zstd")
        return target

    def load_table(self, name: str) -> pa.Table:
        target = self.dir / f"{name}.parquet"
        if not target.exists():
            raise UserError(
                f"run workspace {self.dir} has no '{name}': materialize the whole refresh job, not one asset"
            )
        return pq.read_table(target)

    @property
    def recipients_file(self) -> Path:
        return self.dir / "recipients.parquet"

    @property
    def flags_file(self) -> Path:
        from .publish.history_files import FLAGS_FILE

        return self.dir / FLAGS_FILE

    def save_flags(self, flags: pa.Table) -> Path:
        """The run's membership flags (engine/flags.py), as Arrow IPC: bitmaps stay bitmaps."""
        from .publish.history_files import write_flags

        self.dir.mkdir(parents=True, exist_ok=True)
        write_flags(flags, self.flags_file)
        return self.flags_file

    def load_flags(self) -> pa.Table:
        from .publish.history_files import read_flags

        flags = read_flags(self.dir) if self.flags_file.is_file() else None
        if flags is None:
            raise UserError(
                f"run workspace {self.dir} has no membership flags: materialize the whole refresh job, not one asset"
            )
        return flags

    def save_history(self, delta) -> None:
        """The HistoryDelta of the history step (its files are already in the workspace)."""
        self.save_table("history_sizes", delta.sizes)
        record = {
            "run_id": delta.run_id, "as_of": delta.as_of.isoformat(), "base_version": delta.base_version,
            "replaces_run_id": delta.replaces_run_id, "open_stays": str(delta.open_stays),
            "stays": str(delta.stays) if delta.stays else None,
            "deltas": {kind: str(path) for kind, path in delta.deltas.items()},
            "members": delta.members, "entered": delta.entered, "exited": delta.exited,
        }
        (self.dir / "history.json").write_text(json.dumps(record, indent=1))

    def load_history(self):
        from .publish.flag_history import HistoryDelta

        target = self.dir / "history.json"
        if not target.exists():
            raise UserError(f"run workspace {self.dir} has no history: materialize the whole refresh job")
        record = json.loads(target.read_text())
        return HistoryDelta(
            run_id=record["run_id"], as_of=datetime.fromisoformat(record["as_of"]),
            base_version=record["base_version"], replaces_run_id=record["replaces_run_id"],
            open_stays=Path(record["open_stays"]), deltas={k: Path(v) for k, v in record["deltas"].items()},
            sizes=self.load_table("history_sizes"), stays=Path(record["stays"]) if record.get("stays") else None,
            members=record["members"], entered=record["entered"],
            exited=record["exited"],
        )

    def save_context(self, ctx: RunContext) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        payload = asdict(ctx)
        payload["params"]["as_of"] = ctx.params.as_of.isoformat()
        payload["params"]["started_at"] = ctx.params.started_at.isoformat()
        (self.dir / "context.json").write_text(json.dumps(payload, indent=2))

    def load_context(self) -> RunContext:
        target = self.dir / "context.json"
        if not target.exists():
            raise UserError(f"run workspace {self.dir} is missing: materialize the whole refresh job")
        payload = json.loads(target.read_text())
        params = payload.pop("params")
        params["as_of"] = datetime.fromisoformat(params["as_of"])
        params["started_at"] = datetime.fromisoformat(params["started_at"])
        return RunContext(params=RunParams(**params), **payload)

    def compiled_sql(self) -> dict[str, str]:
        target = self.dir / "compiled_sql.json"
        return json.loads(target.read_text()) if target.exists() else {}

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


# The steps of a run each need the definitions; in one process they are read once
# (and again whenever a file changes: the key is every file's size and mtime).
_projects: dict[str, tuple[tuple, Project]] = {}


def _defs_signature(root: Path) -> tuple:
    entries = []
    for folder, _dirs, files in os.walk(root):
        for name in files:
            if name.endswith(".yaml"):
                stat = os.stat(os.path.join(folder, name))
                entries.append((os.path.join(folder, name), stat.st_mtime_ns, stat.st_size))
    return tuple(sorted(entries))


def load_valid_project(paths: Paths) -> Project:
    """The definitions, or a UserError when any file has a problem (nothing runs on a broken set)."""
    from .segments.loader import load_project

    root = Path(paths.defs)
    signature = _defs_signature(root) if root.is_dir() else None
    cached = _projects.get(str(root.absolute()))
    if signature is not None and cached is not None and cached[0] == signature:
        return cached[1]
    project, problems = load_project(paths.defs)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more; run `segments validate`)" if len(problems) > 1 else ""
        raise UserError(f"{first}{more}")
    if signature is not None:
        _projects[str(root.absolute())] = (signature, project)
    return project


def _definitions_fingerprint(project: Project) -> str:
    from .engine.incremental import SEMANTICS_VERSION

    parts = [f"s:{k}:{s.definition_sha256()}" for k, s in sorted(project.segments.items())]
    parts += [f"a:{k}:{a.definition_sha256()}" for k, a in sorted(project.audiences.items())]
    parts.append(f"fields:{sorted(project.catalog.subscriber.items())}:{sorted(project.catalog.event.items())}")
    parts.append(f"semantics:{SEMANTICS_VERSION}")  # new code that evaluates differently: not the same inputs
    return "\n".join(parts)


def _events_fingerprint(paths: Paths) -> str:
    """The ingested event and suppression files, by content hash, as the ledger lists them
    (a newly landed suppression file changes the recipients: not the same inputs)."""
    from .lake.ledger import INGESTED, Ledger

    ledger = Ledger(paths)
    events = "\n".join(sorted(e.sha256 for e in ledger.entries("events", INGESTED)))
    suppressions = sorted(e.sha256 for e in ledger.entries("suppressions", INGESTED))
    return events + "".join(f"\nsuppressions:{sha}" for sha in suppressions)


def prepare_run(paths: Paths, params: RunParams, limits: IngestLimits | None = None) -> RunContext:
    """Ingest new landing files, pick the snapshot, apply the hold rule.

    Raises UserError (and publishes nothing) when definitions are invalid, a
    landing file was rejected in this run, no snapshot exists at or before
    `as_of`, or the snapshot is held back.
    """
    from .lake.ingest import ensure_row_hashes, ingest_landing
    from .lake.snapshots import snapshot_at_or_before
    from .publish.catalog import relink_if_moved
    from .publish.lock import writer_lock
    from .publish.state import current_state

    refuse_future(params.as_of, params.started_at, allowed=params.allow_future)
    project = load_valid_project(paths)
    relink_if_moved(paths)  # a moved data folder: the checks read the published warehouse
    with writer_lock(paths, run_id=params.run_id):  # ingest writes the lake: one run at a time
        report = ingest_landing(paths, project.catalog, limits)
    if report.rejected:
        first = report.rejected[0]
        more = f" (and {len(report.rejected) - 1} more)" if len(report.rejected) > 1 else ""
        raise UserError(
            f"rejected landing file {first.file}: {first.reason}{more}; it was kept in {paths.rejected} "
            "and nothing was published",
            run_status="rejected",
        )
    snapshot = snapshot_at_or_before(paths, params.as_of)
    if snapshot is None:
        raise UserError(
            f"no subscriber snapshot at or before as_of {format_ts(params.as_of)} in {paths.landing_subscribers}"
        )
    ensure_row_hashes(paths, snapshot.file)
    previous = current_state(paths)
    overtaken = previous is not None and params.as_of < previous.as_of
    if overtaken and not params.overtaken_ok:
        raise UserError(
            f"as_of {format_ts(params.as_of)} is before the last published run ({format_ts(previous.as_of)}, "
            f"run {previous.run_id}); history only moves forward"
        )
    if previous is not None and not overtaken and not params.force and previous.snapshot_rows > 0 \
            and snapshot.source != previous.snapshot:
        _hold_a_sudden_drop(paths, snapshot, previous)
    fingerprint = hashlib.sha256(
        "\n".join([snapshot.sha256, _events_fingerprint(paths), _definitions_fingerprint(project)]).encode()
    ).hexdigest()
    ctx = RunContext(
        params=params,
        snapshot_file=str(snapshot.file),
        snapshot_name=snapshot.source,
        snapshot_at=snapshot.snapshot_at.isoformat(),
        snapshot_rows=snapshot.rows,
        fingerprint=fingerprint,
        parent_version=previous.version if previous else None,
        ingested=list(report.ingested),
        quarantined_rows=report.quarantined_rows,
        row_counts=dict(report.row_counts),
        warnings=list(report.warnings),
    )
    if previous is not None and previous.as_of == params.as_of and previous.fingerprint == fingerprint:
        ctx.unchanged_run_id = previous.run_id
    if overtaken:
        ctx.unchanged_run_id = previous.run_id
        ctx.warnings.append(f"run {previous.run_id} already published a later as_of ({format_ts(previous.as_of)}); "
                            "this scheduled run has nothing to do")
    return ctx


def _hold_a_sudden_drop(paths: Paths, snapshot, previous) -> None:
    """UserError (status "held") when `snapshot` lacks more than HOLD_DROP_SHARE of the
    subscribers of the published snapshot: counted by id, so a snapshot that
    replaces most subscribers with as many new ones is held too."""
    from .lake.snapshots import dropped_subscribers, list_snapshots

    published = next((s for s in list_snapshots(paths) if s.source == previous.snapshot), None)
    if published is None:  # its lake file is gone: only the counts can be compared
        dropped = max(previous.snapshot_rows - snapshot.rows, 0)
    elif snapshot.rows < previous.snapshot_rows * (1 - HOLD_DROP_SHARE):
        dropped = previous.snapshot_rows - snapshot.rows  # at least this many: held without reading ids
    else:
        dropped = dropped_subscribers(published, snapshot)
    if dropped > previous.snapshot_rows * HOLD_DROP_SHARE:
        raise UserError(
            f"snapshot {snapshot.source} lacks {dropped:,} of the {previous.snapshot_rows:,} subscribers of the "
            f"published {previous.snapshot} ({dropped / previous.snapshot_rows:.0%}; it has {snapshot.rows:,}); "
            "held back — check the export, or publish it anyway with `segments run --force`",
            run_status="held",
        )


def record_failure(paths: Paths, params: RunParams, error: UserError) -> None:
    """Note a run that stopped before publishing; it shows in `runs` after the next publish."""
    from .publish.runlog import record_failed_run

    record_failed_run(paths, params.run_id, params.as_of, params.started_at, status=error.run_status,
                      message=str(error))


def parse_params(run_id: str, as_of: str | datetime | None, started_at: datetime, **options) -> RunParams:
    resolved = parse_as_of(as_of) if as_of is not None else None
    return RunParams(run_id=run_id, as_of=resolved or started_at, started_at=started_at, **options)


def _run_snapshot(paths: Paths, ctx: RunContext):
    from .lake.snapshots import snapshot_at_or_before

    snapshot = snapshot_at_or_before(paths, ctx.params.as_of)
    if snapshot is None or str(snapshot.file) != ctx.snapshot_file:
        raise UserError("the lake changed during the run; start the run again")
    return snapshot


def run_subscribers(paths: Paths, ctx: RunContext, project: Project, columns: list[str] | None = None,
                    dictionaries: list[str] | None = None, ids: pa.Array | None = None) -> pa.Table:
    """The run's snapshot (only `columns`, and the rows of `ids`, if given), typed
    by the catalog, in subscriber_id order."""
    from .engine.flags import sort_by_id
    from .lake.snapshots import read_snapshot

    table = read_snapshot(_run_snapshot(paths, ctx), project.catalog, columns, dictionaries, ids)
    return sort_by_id(table) if "subscriber_id" in table.column_names else table


_IDS = ("subscriber_id", "event_id")


def _incremental_flags(paths: Paths, ctx: RunContext, project: Project):
    """Flags from the base version's, re-evaluating only affected subscribers
    (engine/incremental.py); None when the run must (or had better) evaluate in full."""
    from .engine.flags import sort_by_id
    from .engine.incremental import RECORD_FILE, SEMANTICS_VERSION, EvaluationRecord, evaluate_incremental
    from .lake.snapshots import event_part_files, read_event_rows, read_events, read_snapshot_rows
    from .publish.history import history_base
    from .publish.history_files import read_flags
    from .publish.scratch import scratch_connection
    from .publish.state import current_state

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
    snapshot = _run_snapshot(paths, ctx)
    as_of = ctx.params.as_of

    def subscribers(columns: list[str], ids):
        if ids is not None:  # the affected few: DuckDB reads just their rows
            return sort_by_id(read_snapshot_rows(snapshot, project.catalog, columns, ids))
        return run_subscribers(paths, ctx, project, columns, [c for c in columns if c not in _IDS])

    def events(columns: list[str], ids):
        if ids is not None:
            return read_event_rows(paths, project.catalog, as_of, columns, ids)
        return read_events(paths, project.catalog, as_of, columns, [c for c in columns if c not in _IDS])

    def stored_columns(file: str) -> set[str]:
        return set(pq.read_schema(file).names)

    def run_query(query) -> pa.Table:
        con = scratch_connection()
        try:
            return con.sql(query.sql(dialect="duckdb")).to_arrow_table()
        finally:
            con.close()

    current_ids = sort_by_id(subscribers(["subscriber_id"], None)).column("subscriber_id").combine_chunks()
    return evaluate_incremental(
        project, as_of, engine=ctx.params.engine, base_flags=base_flags, base=record,
        snapshot_file=snapshot.file, event_files=event_part_files(paths), current_ids=current_ids,
        read_subscribers=subscribers, read_events=events, stored_columns=stored_columns, run_query=run_query,
        root=Path(paths.data),
    )


def evaluate_run_flags(paths: Paths, ctx: RunContext, project: Project | None = None) -> pa.Table:
    """Membership flags of every segment on the run's snapshot (engine/flags.py).

    Unless the run is `--full`, the flags of the version it builds on are reused
    for every subscriber whose inputs did not change (engine/incremental.py)."""
    from .engine import evaluate_flags
    from .engine.flags import sort_by_id
    from .lake.snapshots import read_events, read_snapshot, snapshot_ranges
    from .segments.plan import build_plan
    from .settings import range_rows

    project = project or load_valid_project(paths)
    if not ctx.params.full:
        incremental = _incremental_flags(paths, ctx, project)
        if incremental is not None:
            flags, how = incremental
            ctx.warnings.append(f"incremental: {how.reasons['affected']:,} subscriber(s) re-evaluated, "
                                f"{len(how.full_segments)} segment(s) in full")
            return flags
    plan = build_plan(project, ctx.params.as_of)
    # String columns come as dictionaries where the lake stores them so: the
    # engines evaluate string filters once per distinct value anyway.
    subscriber_dicts = [c for c in plan.subscriber_fields if c not in _IDS]
    event_dicts = [c for c in plan.event_fields if c not in _IDS]
    snapshot = _run_snapshot(paths, ctx)
    ranges = snapshot_ranges(snapshot, ctx.params.range_rows or range_rows())
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
        return evaluate_flags(project, *read_range(None), ctx.params.as_of, engine=ctx.params.engine)
    # The next range is read on a second thread while this one is evaluated (Parquet
    # decoding releases the GIL): two ranges in memory at most.
    parts = []
    with ThreadPoolExecutor(max_workers=1) as reader:
        upcoming = reader.submit(read_range, ranges[0])
        for index in range(len(ranges)):
            subscribers, events = upcoming.result()
            if index + 1 < len(ranges):
                upcoming = reader.submit(read_range, ranges[index + 1])
            parts.append(evaluate_flags(project, subscribers, events, ctx.params.as_of, engine=ctx.params.engine))
            del subscribers, events
    return pa.concat_tables(parts)


def evaluate_run(paths: Paths, ctx: RunContext) -> tuple[pa.Table, pa.Table, dict[str, str]]:
    """Evaluate every segment on the run's snapshot: (subscribers, membership, compiled SQL)."""
    from .engine import compiled_sql_by_segment, evaluate
    from .lake.snapshots import read_events

    project = load_valid_project(paths)
    subscribers = run_subscribers(paths, ctx, project)
    events = read_events(paths, project.catalog, ctx.params.as_of)
    membership = evaluate(project, subscribers, events, ctx.params.as_of, engine=ctx.params.engine)
    return subscribers, membership, compiled_sql_by_segment(project, ctx.params.as_of)


def segment_counts(membership: pa.Table) -> dict[str, int]:
    grouped = membership.group_by("segment").aggregate([("subscriber_id", "count")])
    return dict(zip(grouped.column("segment").to_pylist(), grouped.column("subscriber_id_count").to_pylist(),
                    strict=True))


def remove_stale_workspaces(paths: Paths, keep: Iterable[str]) -> None:
    """Workspaces of other runs (those in `keep`, runs still in progress, stay)."""
    root = Path(paths.data) / "work"
    keep = set(keep)
    if root.exists():
        for child in root.iterdir():
            if child.name not in keep:
                shutil.rmtree(child, ignore_errors=True)


# --- Steps over the run workspace: each reads what the previous one saved. ---

def step_prepare(paths: Paths, params: RunParams, in_progress: Iterable[str] = (),
                 limits: IngestLimits | None = None) -> RunContext:
    """`in_progress`: ids of other runs still going (their workspaces are not removed)."""
    from .publish.audience_files import resync_audience_files

    remove_stale_workspaces(paths, keep={params.run_id, *in_progress})
    # A run killed after the swap left send lists of the run before: repair them
    # first, whatever this run then does (data-contract.md, "A crash never leaves a
    # wrong send list").
    resync_audience_files(paths)
    ctx = prepare_run(paths, params, limits)
    RunWorkspace(paths, params.run_id).save_context(ctx)
    return ctx


def step_evaluate(paths: Paths, run_id: str) -> tuple[RunContext, dict[str, int]]:
    """Membership flags of every segment, saved in the workspace; segment -> members."""
    from .engine import compiled_sql_by_segment
    from .engine.flags import member_counts

    ws = RunWorkspace(paths, run_id)
    ctx = ws.load_context()
    if ctx.unchanged:
        return ctx, {}
    from .engine.incremental import RECORD_FILE, EvaluationRecord
    from .lake.snapshots import event_part_files

    project = load_valid_project(paths)
    record = EvaluationRecord.of(project, ctx.params.as_of, ctx.snapshot_file, event_part_files(paths),
                                 root=Path(paths.data))
    warnings = len(ctx.warnings)
    flags = evaluate_run_flags(paths, ctx, project)
    ws.save_flags(flags)
    ws.dir.mkdir(parents=True, exist_ok=True)
    record.save(ws.dir / RECORD_FILE)
    if len(ctx.warnings) > warnings:  # how the flags were made, for the run's later steps and logs
        ws.save_context(ctx)
    (ws.dir / "compiled_sql.json").write_text(json.dumps(compiled_sql_by_segment(project, ctx.params.as_of),
                                                          indent=1))
    return ctx, member_counts(flags)


def step_history(paths: Paths, run_id: str):
    """Stays, changes and sizes against the published state this run started from
    (publish/flag_history.py: the run's flags against the published ones)."""
    from .publish.flag_history import extend_history
    from .publish.state import current_state

    ws = RunWorkspace(paths, run_id)
    ctx = ws.load_context()
    if ctx.unchanged:
        return ctx, None
    previous = current_state(paths)
    if (previous.version if previous else None) != ctx.parent_version:
        raise UserError("another run published while this one was running; start this run again")
    project = load_valid_project(paths)
    delta = extend_history(previous, ws.load_flags(), run_id, ctx.params.as_of, segments=project.segments,
                           out_dir=ws.dir / "history")
    ws.save_history(delta)
    return ctx, delta


def run_suppressions(paths: Paths, ctx: RunContext):
    """The suppression list and the held rows of the run's snapshot (publish/audiences.py)."""
    from .lake.suppressions import read_held_rows, read_suppression_list
    from .publish.audiences import Suppressions

    return Suppressions(listed=read_suppression_list(paths), held=read_held_rows(paths, ctx.snapshot_file),
                        snapshot_at=datetime.fromisoformat(ctx.snapshot_at) if ctx.snapshot_at else None)


def _recipient_columns(project: Project) -> list[str]:
    from .publish.audiences import audience_field_columns

    return ["subscriber_id", "status", "email", *audience_field_columns(project)]


def step_recipients(paths: Paths, run_id: str) -> tuple[RunContext, dict[str, int] | None]:
    """Recipients of every audience, written to the workspace as the version will publish
    them (sorted by audience, subscriber_id); returns recipients per audience."""
    from .publish import audiences

    ws = RunWorkspace(paths, run_id)
    ctx = ws.load_context()
    if ctx.unchanged:
        return ctx, None
    project = load_valid_project(paths)
    subscribers = run_subscribers(paths, ctx, project, _recipient_columns(project))
    ws.dir.mkdir(parents=True, exist_ok=True)
    # Written a part at a time: at 100M subscribers the table would not fit in memory.
    counts = audiences.write_recipients(project, ws.load_flags(), subscribers, run_id, ws.recipients_file,
                                        run_suppressions(paths, ctx))
    return ctx, counts


def step_publish(paths: Paths, run_id: str, keep_versions: int = 5):
    """Stage the new version and swap it in atomically.

    The workspace stays until the next run starts, because asset checks of this
    run may still read it."""
    from .lake.snapshots import event_part_files, quarantine_table
    from .publish.state import current_state, writer_lock
    from .publish.warehouse import lake_file_is_publishable, publish_version, stage_version

    ws = RunWorkspace(paths, run_id)
    ctx = ws.load_context()
    if ctx.unchanged:
        return ctx, None
    project = load_valid_project(paths)
    # The lake's snapshot file is published as it is when it already has the
    # published columns; then only the columns the suppression check reads are loaded.
    linkable = lake_file_is_publishable(project, Path(ctx.snapshot_file))
    subscribers = run_subscribers(paths, ctx, project, ["subscriber_id", "status", "email"] if linkable else None)
    with writer_lock(paths):
        previous = current_state(paths)
        if (previous.version if previous else None) != ctx.parent_version:
            raise UserError("another run published while this one was running; start this run again")
        staged = stage_version(
            paths,
            project=project,
            run_id=run_id,
            as_of=ctx.params.as_of,
            started_at=ctx.params.started_at,
            snapshot_name=ctx.snapshot_name,
            snapshot_rows=ctx.snapshot_rows,
            fingerprint=ctx.fingerprint,
            subscribers=subscribers,
            history=ws.load_history(),
            compiled_sql=ws.compiled_sql(),
            quarantine=quarantine_table(paths),
            event_files=event_part_files(paths),
            flags_file=ws.flags_file,
            subscribers_file=Path(ctx.snapshot_file) if linkable else None,
            extra_files=[ws.dir / "evaluation.json"],
            recipients_file=ws.recipients_file,
            suppressions=run_suppressions(paths, ctx),
        )
        result = publish_version(paths, staged, keep_versions=keep_versions)
    return ctx, result


def run_steps(paths: Paths, params: RunParams, keep_versions: int = 5) -> tuple[RunContext, dict[str, float]]:
    """Every step of one run in this process, without Dagster (benchmarks, tests):
    the run's context and each step's wall time in seconds."""
    import time

    timings: dict[str, float] = {}
    started = time.perf_counter()
    step_prepare(paths, params)
    timings["prepare"] = time.perf_counter() - started
    for name, step in (("evaluate", step_evaluate), ("history", step_history), ("recipients", step_recipients)):
        started = time.perf_counter()
        step(paths, params.run_id)
        timings[name] = time.perf_counter() - started
    started = time.perf_counter()
    step_publish(paths, params.run_id, keep_versions=keep_versions)
    timings["publish"] = time.perf_counter() - started
    return RunWorkspace(paths, params.run_id).load_context(), timings
