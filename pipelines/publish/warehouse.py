"""Publishing a run as a new version of the analyst warehouse, atomically.

Under the writer lock, `publish_version` writes DATA/published/versions/<version>/
(nothing visible yet), builds a catalog for it beside warehouse.duckdb and
renames it over warehouse.duckdb (the atomic step), then records the run,
refreshes the audience files and prunes old versions.

A run with the same as_of and inputs as the published one never gets here
(run/prepare.py ends it as unchanged); with other inputs it *replaces* the
published run (state.history_base), which stays in `runs` as 'replaced'.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..core import schemas
from ..core.files import failpoint, fsync_dir, fsync_file, remove_path
from ..core.settings import Paths
from ..engine.incremental import RECORD_FILE
from ..errors import UserError
from ..lake.snapshots import event_part_files, quarantine_table
from ..segments.model import Project
from ..segments.utc import naive_utc
from .audience_files import sync_audience_files
from .audiences import audiences_table
from .catalog import (
    build_catalog,
    remove_temp_catalogs,
    swap_in_catalog,
    temp_catalog_path,
    write_event_file_list,
)
from .flag_history import STAYS_FILE, HistoryDelta
from .history_files import extend_manifest, link_or_copy
from .lock import writer_lock
from .membership_files import membership_files, part_path
from .runlog import RunRecord, append_run_record, merge_runs, read_run_log, records_from_table
from .state import PublishedState, current_state, history_base, write_state_file
from .versions import (
    FLAGS_FILE,
    RECIPIENTS_FILE,
    finish_staging,
    new_staging_dir,
    next_seq,
    prune_versions,
    relation_path,
    version_name,
)

DEFAULT_KEEP_VERSIONS = 5


def write_parquet(table: pa.Table, target: Path) -> None:
    """Write and fsync one Parquet file (zstd: small files, fast to read)."""
    pq.write_table(table, target, compression="zstd")
    fsync_file(target)


def _subscribers_table(project: Project, subscribers: pa.Table) -> pa.Table:
    """Every standard and declared field first (missing ones as typed NULLs), then extra columns."""
    catalog_schema = project.catalog.subscriber_schema()
    extra = [f for f in subscribers.schema if f.name not in catalog_schema.names]
    columns = [subscribers.column(f.name).cast(f.type) if f.name in subscribers.column_names
               else pa.nulls(subscribers.num_rows, f.type) for f in catalog_schema]
    return pa.Table.from_arrays([*columns, *(subscribers.column(f.name) for f in extra)],
                                schema=pa.schema([*catalog_schema, *extra]))


def _segments_table(project: Project, run_sizes: pa.Table, compiled_sql: dict[str, str]) -> pa.Table:
    moves = {row["segment"]: row for row in run_sizes.to_pylist()}
    return pa.Table.from_pylist([
        {"segment": key, "name": s.name, "description": s.description,
         "definition_sha256": s.definition_sha256(),
         **{n: moves.get(key, {}).get(n, 0) for n in ("members", "entered", "exited")},
         "depends_on": s.references(), "sql": compiled_sql.get(key)}
        for key, s in sorted(project.segments.items())], schema=schemas.SEGMENTS)


def lake_file_is_publishable(project: Project, snapshot_file: Path) -> bool:
    """Whether the lake snapshot file already is the published `subscribers` relation."""
    if not snapshot_file.is_file():
        return False
    stored = pq.read_schema(snapshot_file).remove_metadata()
    expected = project.catalog.subscriber_schema()

    def same(a: pa.DataType, b: pa.DataType) -> bool:  # a list's item name does not matter to readers
        return a == b or (pa.types.is_list(a) and pa.types.is_list(b) and a.value_type == b.value_type)

    return stored.names[:len(expected)] == expected.names and all(
        same(stored.field(f.name).type, f.type) for f in expected) and all(
        pa.types.is_string(stored.field(name).type) for name in stored.names[len(expected):])


def publish_version(paths: Paths, project: Project, record: RunRecord, workdir: Path,
                    history: HistoryDelta, *, subscribers: pa.Table | Path, suppressions: pa.Table, compiled_sql: dict[str, str],
                    keep_versions: int = DEFAULT_KEEP_VERSIONS, inputs_signature: str | None = None) -> PublishedState:
    """Stage the run's version, swap it in, then export audiences and prune. The run's
    files (in `workdir` and `history`) are linked, not rewritten; `subscribers` is the lake's
    snapshot file when `lake_file_is_publishable`, else the snapshot as a table;
    `inputs_signature`: the run's (run/inputs.py), kept in the state."""
    if keep_versions < 1:
        raise UserError(f"keep_versions must be at least 1, got {keep_versions}")
    with writer_lock(paths, run_id=record.run_id):
        state, records = _stage(paths, project, record, workdir, history, subscribers, suppressions,
                                compiled_sql, inputs_signature)
        catalog = temp_catalog_path(paths, state.version)
        build_catalog(catalog, state)
        failpoint("publish:catalog_built")
        swap_in_catalog(paths, catalog)
        failpoint("publish:swapped")

        # After the swap: everything below can be redone by the next run.
        for run in records:
            append_run_record(paths, run)
        sync_audience_files(paths, state)
        failpoint("publish:cleanup")
        protected = {state.base_version} if state.base_version else set()
        prune_versions(paths, current=state.version, protected=protected, keep=keep_versions)
        remove_temp_catalogs(paths)
        fsync_dir(Path(paths.data))
        return state


def _stage(paths: Paths, project: Project, record: RunRecord, workdir: Path, history: HistoryDelta,
           subscribers: pa.Table | Path, suppressions: pa.Table, compiled_sql: dict[str, str],
           inputs_signature: str | None) -> tuple[PublishedState, list[RunRecord]]:
    """The new version directory (invisible to readers until the swap), and the run
    records to append once it is published (the replaced run's first)."""
    as_of = naive_utc(record.as_of)
    run_id = record.run_id
    current = current_state(paths)
    base, replaces = history_base(current, as_of)  # raises for an as_of in the past
    base_version = base.version if base else None
    if (history.run_id, history.as_of, history.base_version) != (run_id, as_of, base_version):
        raise UserError(
            f"history was computed for run {history.run_id} on version {history.base_version}, but run {run_id} "
            f"builds on {base_version or 'nothing'}; start the run again"
        )
    seq = next_seq(paths)
    name = version_name(seq, as_of)
    staging = new_staging_dir(paths)
    final = staging.parent / name
    state = PublishedState(
        version=name, version_dir=final.absolute(), run_id=run_id, as_of=as_of,
        snapshot_rows=int(record.snapshot_rows or 0), snapshot=record.snapshot or "",
        fingerprint=record.fingerprint or "", base_version=base_version,
        replaces_run_id=replaces, inputs_signature=inputs_signature,
    )
    started_at = record.started_at and naive_utc(record.started_at)
    run_record = replace(record, as_of=as_of, started_at=started_at, version=name,
                         finished_at=datetime.now(UTC).replace(tzinfo=None))  # bookkeeping: wall clock
    published_runs = records_from_table(pq.read_table(relation_path(current.version_dir, "runs"))) \
        if current else []
    replaced = None
    if replaces and current is not None:
        previous = next((r for r in published_runs if r.run_id == current.run_id), None)
        replaced = (previous or RunRecord(run_id=current.run_id, as_of=current.as_of, started_at=None)
                    ).replaced_by(run_id)
    records = [r for r in (replaced, run_record) if r]
    recipients = workdir / RECIPIENTS_FILE
    relations: dict[str, pa.Table | Path] = {
        "subscribers": subscribers if isinstance(subscribers, Path)
        else _subscribers_table(project, subscribers),
        "segments": _segments_table(project, history.sizes, compiled_sql),
        "segment_membership": history.open_stays,
        "runs": merge_runs(read_run_log(paths), published_runs, records),
        "recipients": recipients,
        "suppressions": suppressions,
        "audiences": audiences_table(project, recipients),
        "quarantine": schemas.conform(quarantine_table(paths), schemas.QUARANTINE, what="quarantine"),
    }
    try:
        for index, (relation, table) in enumerate(relations.items()):
            target = relation_path(staging, relation)
            if relation == "segment_membership":
                # The files written in parallel.
                for number, part in enumerate(membership_files(history.open_stays)):
                    link_or_copy(part, part_path(target, number))
            elif isinstance(table, Path):
                link_or_copy(table, target)
            else:
                write_parquet(table, target)
            if index == 2:
                failpoint("stage:files")
        link_or_copy(workdir / FLAGS_FILE, staging / FLAGS_FILE)
        if (workdir / RECORD_FILE).is_file():
            link_or_copy(workdir / RECORD_FILE, staging / RECORD_FILE)
        link_or_copy(history.stays, staging / STAYS_FILE)
        extend_manifest(base.version_dir if base else None, staging, history.deltas, f"{seq:06d}")
        # The lake's (immutable) event files now: `events` never shows a later run's ingest.
        write_event_file_list(staging, project, event_part_files(paths))
        write_state_file(staging, state)
        finish_staging(staging, final)
    except BaseException:
        # A crash (SIGKILL) leaves it behind instead; the next publish prunes it.
        remove_path(staging)
        raise
    failpoint("stage:done")
    return state, records
