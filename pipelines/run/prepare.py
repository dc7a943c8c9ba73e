"""The first step of a run: ingest new landing files, pick the snapshot, apply the
hold rule, and decide whether the inputs were already published."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable
from pathlib import Path

from ..core.clock import format_ts, refuse_future, utc_now
from ..core.settings import SEMANTICS_VERSION, IngestLimits, Paths
from ..errors import UserError
from ..lake.ingest import ingest_landing
from ..lake.ledger import INGESTED, Ledger
from ..lake.snapshots import dropped_subscribers, list_snapshots, snapshot_at_or_before
from ..publish.audience_files import resync_audience_files
from ..publish.catalog import relink_if_moved
from ..publish.lock import writer_lock
from ..publish.runlog import RunRecord, append_run_record
from ..publish.state import current_state
from ..segments.loader import load_project
from ..segments.model import Project
from ..segments.utc import naive_utc
from .inputs import definitions_digest, inputs_signature
from .params import RunContext, RunParams, Workspace

# A snapshot that loses more than this share of the previous one is held back.
HOLD_DROP_SHARE = 0.5

# The definitions are parsed once per process, again when a file's bytes change.
_projects: dict[str, tuple[str, Project]] = {}


def load_valid_project(paths: Paths) -> Project:
    """The definitions, or a UserError when any file has a problem (nothing runs on a broken set)."""
    root = Path(paths.defs)
    signature = definitions_digest(root) if root.is_dir() else None
    cached = _projects.get(str(root.absolute()))
    if signature is not None and cached is not None and cached[0] == signature:
        return cached[1]
    project, problems = load_project(paths.defs)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more; run `segments validate`)" if len(problems) > 1 else ""
        raise UserError(f"{first}{more}")
    if signature is not None and signature == definitions_digest(root):  # not edited while being read
        _projects[str(root.absolute())] = (signature, project)
    return project


def _definitions_fingerprint(project: Project) -> str:
    parts = [f"s:{k}:{s.definition_sha256()}" for k, s in sorted(project.segments.items())]
    parts += [f"a:{k}:{a.definition_sha256()}" for k, a in sorted(project.audiences.items())]
    parts.append(f"fields:{sorted(project.catalog.subscriber.items())}:{sorted(project.catalog.event.items())}")
    parts.append(f"semantics:{SEMANTICS_VERSION}")  # new code that evaluates differently: not the same inputs
    return "\n".join(parts)


def _events_fingerprint(paths: Paths) -> str:
    """The ingested event and suppression files, by content hash, as the ledger lists them
    (a newly landed suppression file changes the recipients: not the same inputs)."""
    ledger = Ledger(paths)
    events = "\n".join(sorted(e.sha256 for e in ledger.entries("events", INGESTED)))
    suppressions = sorted(e.sha256 for e in ledger.entries("suppressions", INGESTED))
    return events + "".join(f"\nsuppressions:{sha}" for sha in suppressions)


def prepare(paths: Paths, params: RunParams, in_progress: Iterable[str] = (),
            limits: IngestLimits | None = None) -> RunContext:
    """The first step, its decision saved in the run's workspace; a UserError (nothing
    published) for invalid definitions, a rejected landing file, no snapshot, a held one.
    `in_progress`: ids of other runs still going (their workspaces are not removed)."""
    workspace = Workspace(paths, params.run_id)
    keep = {params.run_id, *in_progress}
    for stale in workspace.dir.parent.glob("*"):  # other runs' scratch workspaces
        if stale.name not in keep:
            shutil.rmtree(stale, ignore_errors=True)
    # A run killed after the swap left the send lists before it: repair them whatever this
    # run then does (data-contract.md, "A crash never leaves a wrong send list").
    resync_audience_files(paths)
    if "\\" in str(Path(paths.data).resolve()):
        # DuckDB turns it into '/' in a database file's path, however quoted.
        raise UserError(f"the data folder {paths.data} has a backslash in its path, where DuckDB cannot open "
                        "warehouse.duckdb; use a folder without one")
    relink_if_moved(paths)  # a moved data folder, even when this run is refused below
    refuse_future(params.as_of, params.started_at, allowed=params.allow_future)
    definitions = definitions_digest(Path(paths.defs)) if Path(paths.defs).is_dir() else None  # before reading them
    project = load_valid_project(paths)
    with writer_lock(paths, run_id=params.run_id):  # ingest writes the lake: one run at a time
        report = ingest_landing(paths, project.catalog, limits)
        # After ingest hashed the landing files, under the lock that keeps other runs out.
        signature = inputs_signature(paths, params.as_of, definitions)
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
    previous = current_state(paths)
    overtaken = previous is not None and params.as_of < previous.as_of
    if previous is not None and overtaken and not params.overtaken_ok:
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
        params=params, fingerprint=fingerprint, parent_version=previous.version if previous else None,
        snapshot_file=str(snapshot.file), snapshot_name=snapshot.source,
        snapshot_at=snapshot.snapshot_at.isoformat(), snapshot_rows=snapshot.rows,
        ingested=list(report.ingested), quarantined_rows=report.quarantined_rows,
        row_counts=dict(report.row_counts), warnings=list(report.warnings), inputs_signature=signature,
    )
    if previous is not None and previous.as_of == params.as_of and previous.fingerprint == fingerprint:
        ctx.unchanged_run_id = previous.run_id
    if previous is not None and overtaken:
        ctx.unchanged_run_id = previous.run_id
        ctx.warnings.append(f"run {previous.run_id} already published a later as_of ({format_ts(previous.as_of)}); "
                            "this scheduled run has nothing to do")
    workspace.save_context(ctx)
    return ctx


def _hold_a_sudden_drop(paths: Paths, snapshot, previous) -> None:
    """UserError (status "held") when `snapshot` lacks more than HOLD_DROP_SHARE of the published
    snapshot's subscribers, by id: one that replaces most with as many new ones is held too."""
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
    """Note a run that stopped before publishing (status 'failed', 'held', ...: the
    error's run_status); it shows in `runs` after the next publish."""
    append_run_record(paths, RunRecord(
        run_id=params.run_id, as_of=naive_utc(params.as_of), started_at=naive_utc(params.started_at),
        finished_at=utc_now(),  # bookkeeping: the wall clock is fine here
        status=error.run_status, message=str(error) or None))
