"""Staging and atomically publishing a version of the analyst warehouse.

    stage_version   writes DATA/published/versions/<version>/ (one Parquet file
                    per relation + state.json); publishes nothing
    publish_version builds a catalog for it beside warehouse.duckdb, renames it
                    over warehouse.duckdb (the atomic step), records the run,
                    refreshes the audience files and prunes old versions

Re-runs (decided by `plan_publish` from `as_of` and the inputs' fingerprint):
- same as_of, same fingerprint: nothing changes; the result says "unchanged,
  already published as run X" (and audience files are re-synced, in case a
  crash interrupted them);
- same as_of, different fingerprint (a late file, a fixed definition): the new
  run *replaces* the published one. Its history is built on the version the
  replaced run built on, so no stay, change or size of the replaced run
  survives; the replaced run stays in `runs` with status 'replaced';
- an as_of earlier than the published one: UserError, history only moves
  forward (the history of later runs would otherwise have to be rewritten).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq

from ..core import schemas
from ..core.files import failpoint, fsync_dir, remove_path, write_parquet
from ..core.settings import Paths
from ..errors import UserError
from ..segments.model import Project
from ..segments.plan import naive_utc
from .audience_files import sync_audience_files
from .audiences import (
    Suppressions,
    audiences_table,
    suppression_violations,
    suppressions_table,
)
from .catalog import (
    build_catalog,
    remove_temp_catalogs,
    swap_in_catalog,
    temp_catalog_path,
    write_event_file_list,
)
from .flag_history import STAYS_FILE, HistoryDelta
from .history import history_base
from .history_files import (
    FLAGS_FILE,
    extend_manifest,
    link_or_copy,
)
from .lock import writer_lock
from .membership_files import membership_files, part_path
from .runlog import PUBLISHED, RunRecord, append_run_record, merge_runs, read_run_log, records_from_table
from .state import PublishedState, current_state, write_state_file
from .versions import finish_staging, new_staging_dir, next_seq, prune_versions, relation_path, version_name

DEFAULT_KEEP_VERSIONS = 5


@dataclass(frozen=True)
class PublishPlan:
    """What a run at `as_of` with inputs `fingerprint` will do to the published state."""

    action: Literal["new", "replace", "unchanged"]
    current: PublishedState | None
    base: PublishedState | None  # the state whose history the run extends
    message: str


@dataclass(frozen=True)
class StagedVersion:
    state: PublishedState  # what will be published
    expected_current: str | None  # the version that must still be current at publish time
    run_record: RunRecord
    replaced_record: RunRecord | None = None
    unchanged: bool = False  # same as_of and inputs as the published run: nothing staged

    @property
    def version(self) -> str:
        return self.state.version

    @property
    def version_dir(self) -> Path:
        return self.state.version_dir


@dataclass(frozen=True)
class PublishResult:
    status: Literal["published", "unchanged"]
    run_id: str  # the published run (for 'unchanged': the run published earlier)
    version: str
    as_of: datetime
    message: str
    replaced_run_id: str | None = None

    @property
    def unchanged(self) -> bool:
        return self.status == "unchanged"


def plan_publish(paths: Paths, as_of: datetime, fingerprint: str) -> PublishPlan:
    """Decide new / replace / unchanged (or refuse an as_of in the past)."""
    as_of = naive_utc(as_of)
    current = current_state(paths)
    if current is not None and as_of == current.as_of and fingerprint == current.fingerprint:
        return PublishPlan("unchanged", current, None, f"unchanged, already published as run {current.run_id}")
    base, replaces = history_base(current, as_of)  # raises for an as_of in the past
    if replaces:
        return PublishPlan("replace", current, base, f"replaces run {replaces} (same as_of, different inputs)")
    return PublishPlan("new", current, base, "new run")


def _check_delta(history: HistoryDelta, base: PublishedState | None, run_id: str, as_of: datetime) -> None:
    base_version = base.version if base else None
    if history.run_id != run_id or history.as_of != as_of or history.base_version != base_version:
        raise UserError(
            f"history was computed for run {history.run_id} on version {history.base_version}, but run {run_id} "
            f"builds on {base_version or 'nothing'}; start the run again"
        )


def _subscribers_table(project: Project, subscribers: pa.Table) -> pa.Table:
    """Every standard and declared field first (missing ones as typed NULLs), then extra columns."""
    catalog_schema = project.catalog.subscriber_schema()
    columns, fields = [], []
    for f in catalog_schema:
        if f.name in subscribers.column_names:
            column = subscribers.column(f.name)
            columns.append(column.cast(f.type) if column.type != f.type else column)
        else:
            columns.append(pa.nulls(subscribers.num_rows, f.type))
        fields.append(f)
    for name in subscribers.column_names:
        if name not in catalog_schema.names:
            columns.append(subscribers.column(name))
            fields.append(subscribers.schema.field(name))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _segments_table(project: Project, counts_by: dict[str, int], run_sizes: pa.Table,
                    compiled_sql: dict[str, str]) -> pa.Table:
    moves = {row["segment"]: row for row in run_sizes.to_pylist()}
    rows = sorted(project.segments.items())
    return pa.table({
        "segment": [k for k, _ in rows],
        "name": [s.name for _, s in rows],
        "description": [s.description for _, s in rows],
        "definition_sha256": [s.definition_sha256() for _, s in rows],
        "members": [counts_by.get(k, 0) for k, _ in rows],
        "entered": [moves.get(k, {}).get("entered", 0) for k, _ in rows],
        "exited": [moves.get(k, {}).get("exited", 0) for k, _ in rows],
        "depends_on": [s.references() for _, s in rows],
        "sql": [compiled_sql.get(k) for k, _ in rows],
    }, schema=schemas.SEGMENTS)


def lake_file_is_publishable(project: Project, subscribers_file: Path | None) -> bool:
    """Whether the lake snapshot file already is the published `subscribers` relation."""
    if subscribers_file is None or not Path(subscribers_file).is_file():
        return False
    stored = pq.read_schema(subscribers_file).remove_metadata()
    expected = project.catalog.subscriber_schema()

    def same(a: pa.DataType, b: pa.DataType) -> bool:  # a list's item name does not matter to readers
        if pa.types.is_list(a) and pa.types.is_list(b):
            return a.value_type == b.value_type
        return a == b

    return stored.names[:len(expected)] == expected.names and all(
        same(stored.field(f.name).type, f.type) for f in expected) and all(
        pa.types.is_string(stored.field(name).type) for name in stored.names[len(expected):])


def stage_version(
    paths: Paths,
    *,
    project: Project,
    run_id: str,
    as_of: datetime,
    started_at: datetime,
    snapshot_name: str,
    snapshot_rows: int,
    fingerprint: str,
    subscribers: pa.Table,
    history: HistoryDelta,
    compiled_sql: dict[str, str],
    quarantine: pa.Table | None,
    flags_file: Path,
    recipients_file: Path,
    event_files: Sequence[Path] = (),
    subscribers_file: Path | None = None,
    extra_files: Sequence[Path] = (),
    suppressions: Suppressions | None = None,
) -> StagedVersion:
    """Write the new version directory; nothing is visible to readers yet.

    The run's files go in linked, not rewritten: `flags_file` (membership
    flags), `history` (pipelines/publish/flag_history.py) and `recipients_file`
    (the `recipients` table, written sorted by the run). `subscribers_file`, the
    lake's snapshot, is linked as the `subscribers` relation when it already has
    the published columns (else `subscribers` is written).

    `event_files` are the lake's (immutable) event Parquet files the run saw;
    the version lists them so the `events` view never picks up a file that a
    later run ingests. `extra_files` are copied into the version as they are
    (the run's evaluation record, engine/incremental.py).
    `suppressions` (the suppression list and the snapshot's held rows) is
    published as the `suppressions` relation and enforced with `subscribers`
    (which needs subscriber_id, status and email).
    """
    as_of = naive_utc(as_of)
    with writer_lock(paths, run_id=run_id):
        plan = plan_publish(paths, as_of, fingerprint)
        current = plan.current
        if plan.action == "unchanged":
            assert current is not None
            return StagedVersion(
                state=current, expected_current=current.version, unchanged=True,
                run_record=RunRecord(run_id=current.run_id, as_of=current.as_of, started_at=None,
                                     finished_at=None, status=PUBLISHED),
            )
        run_sizes = history.run_sizes(run_id)
        counts = dict(zip(run_sizes.column("segment").to_pylist(), run_sizes.column("members").to_pylist(),
                          strict=True))
        unknown = {k for k, n in counts.items() if n} - set(project.segments)
        _check_delta(history, plan.base, run_id, as_of)
        if unknown:
            raise ValueError(f"membership has segment(s) that are not defined: {', '.join(sorted(unknown))}")
        # The suppression rule has no switch, so it is enforced here too, not
        # only by the Dagster check: nothing that breaks it gets published.
        recipients_source = Path(recipients_file)
        suppressions = suppressions or Suppressions()
        violations = suppression_violations(recipients_source, subscribers, suppressions)
        if violations:
            raise UserError(f"refusing to publish: {violations} recipient row(s) are not active subscribers, "
                            "suppressed addresses or repeated addresses")

        seq = next_seq(paths, current.version if current else None)
        name = version_name(seq, as_of)
        staging = new_staging_dir(paths)
        final = staging.parent / name
        state = PublishedState(
            version=name, version_dir=final.absolute(), run_id=run_id, as_of=as_of,
            snapshot_rows=int(snapshot_rows), snapshot=snapshot_name, fingerprint=fingerprint,
            base_version=plan.base.version if plan.base else None,
            replaces_run_id=current.run_id if plan.action == "replace" and current else None,
        )
        run_record = RunRecord(
            run_id=run_id, as_of=as_of, started_at=naive_utc(started_at),
            finished_at=datetime.now(UTC).replace(tzinfo=None),  # bookkeeping: the wall clock is fine here
            status=PUBLISHED, snapshot=snapshot_name, snapshot_rows=int(snapshot_rows),
            fingerprint=fingerprint, version=name,
        )
        published_runs = records_from_table(pq.read_table(relation_path(current.version_dir, "runs"))) \
            if current else []
        replaced = None
        if plan.action == "replace" and current is not None:
            previous = next((r for r in published_runs if r.run_id == current.run_id), None)
            replaced = (previous or RunRecord(run_id=current.run_id, as_of=current.as_of, started_at=None,
                                              finished_at=None, status=PUBLISHED)).replaced_by(run_id)
        runs = merge_runs(read_run_log(paths), published_runs, [r for r in (replaced, run_record) if r])

        relations: dict[str, pa.Table | Path] = {}
        if subscribers_file is not None and lake_file_is_publishable(project, subscribers_file):
            relations["subscribers"] = Path(subscribers_file)
        else:
            relations["subscribers"] = _subscribers_table(project, subscribers)
        relations["segments"] = _segments_table(project, counts, run_sizes, compiled_sql)
        relations["segment_membership"] = history.open_stays
        relations.update({
            "runs": runs,
            "recipients": recipients_source,
            "suppressions": suppressions_table(subscribers, suppressions),
            "audiences": audiences_table(project, recipients_source),
            "quarantine": schemas.conform(quarantine, schemas.QUARANTINE, what="quarantine"),
        })
        try:
            for index, (relation, table) in enumerate(relations.items()):
                target = relation_path(staging, relation)
                if isinstance(table, Path) and relation == "segment_membership":
                    for number, part in enumerate(membership_files(table)):  # the files written in parallel
                        link_or_copy(part, part_path(target, number))
                elif isinstance(table, Path):
                    link_or_copy(table, target)
                else:
                    write_parquet(table, target)
                if index == 2:
                    failpoint("stage:files")
            link_or_copy(Path(flags_file), staging / FLAGS_FILE)
            if history.stays is not None and Path(history.stays).is_file():
                link_or_copy(Path(history.stays), staging / STAYS_FILE)
            extend_manifest(plan.base.version_dir if plan.base else None, staging, dict(history.deltas),
                            f"{seq:06d}")
            for extra in extra_files:
                if Path(extra).is_file():
                    link_or_copy(Path(extra), staging / Path(extra).name)
            write_event_file_list(staging, project, event_files)
            write_state_file(staging, state)
            finish_staging(staging, final)
        except BaseException:
            # A crash (SIGKILL) leaves it behind instead; the next publish prunes it.
            remove_path(staging)
            raise
        failpoint("stage:done")
        return StagedVersion(state=state, expected_current=current.version if current else None,
                             run_record=run_record, replaced_record=replaced)


def publish_version(paths: Paths, staged: StagedVersion, keep_versions: int = DEFAULT_KEEP_VERSIONS) -> PublishResult:
    """Atomically make `staged` the published state, then export audiences and prune."""
    if keep_versions < 1:
        raise UserError(f"keep_versions must be at least 1, got {keep_versions}")
    with writer_lock(paths, run_id=staged.state.run_id):
        current = current_state(paths)
        if staged.unchanged:
            if current is None or current.version != staged.version:
                raise UserError("the published state changed since this run was planned; start the run again")
            sync_audience_files(paths, current)
            return PublishResult("unchanged", current.run_id, current.version, current.as_of,
                                 f"unchanged, already published as run {current.run_id}")
        if (current.version if current else None) != staged.expected_current:
            raise UserError(
                f"another run published version {current.version if current else None} after this run "
                f"was staged on {staged.expected_current}; start the run again"
            )
        if not (staged.version_dir / "state.json").is_file():
            raise UserError(f"staged version {staged.version} is missing ({staged.version_dir}); start the run again")

        catalog = temp_catalog_path(paths, staged.version)
        build_catalog(catalog, staged.state)
        failpoint("publish:catalog_built")
        swap_in_catalog(paths, catalog)
        failpoint("publish:swapped")

        # After the swap: everything below can be redone by the next run.
        for record in (staged.replaced_record, staged.run_record):
            if record is not None:
                append_run_record(paths, record)
        sync_audience_files(paths, staged.state)
        failpoint("publish:cleanup")
        protected = {staged.state.base_version} if staged.state.base_version else set()
        prune_versions(paths, current=staged.version, protected=protected, keep=keep_versions)
        remove_temp_catalogs(paths)
        fsync_dir(Path(paths.data))
        replaced = staged.state.replaces_run_id
        message = f"published run {staged.state.run_id} as version {staged.version}"
        if replaced:
            message += f" (replacing run {replaced})"
        return PublishResult("published", staged.state.run_id, staged.version, staged.state.as_of, message,
                             replaced_run_id=replaced)
