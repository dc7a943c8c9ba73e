"""The steps after ingest: evaluate, history, recipients, publish. The snapshot columns
they share and the suppressions are read once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path

import pyarrow as pa

from .. import engine
from ..core.flags import member_counts, sort_by_id
from ..core.settings import Paths
from ..engine.incremental import RECORD_FILE, EvaluationRecord
from ..errors import UserError
from ..lake.snapshots import event_part_files, read_snapshot
from ..lake.suppressions import read_held_rows, read_suppression_list
from ..publish.audiences import Suppressions, audience_field_columns, suppressions_table, write_recipients
from ..publish.flag_history import HistoryDelta, extend_history
from ..publish.history_files import write_flags
from ..publish.lock import writer_lock
from ..publish.runlog import RunRecord
from ..publish.state import PublishedState, current_state
from ..publish.warehouse import DEFAULT_KEEP_VERSIONS, lake_file_is_publishable, publish_version
from .evaluate import evaluate_flags, run_snapshot
from .params import Workspace
from .prepare import load_valid_project


@dataclass
class Evaluation:
    flags: pa.Table
    counts: dict[str, int]  # segment -> members
    compiled_sql: dict[str, str]  # segment -> its query


class Run:
    """A prepared run (its context is in the workspace), taken to publish."""

    def __init__(self, paths: Paths, run_id: str):
        self.paths = paths
        self.run_id = run_id
        self.workspace = Workspace(paths, run_id)
        self.ctx = self.workspace.load_context()
        self.project = load_valid_project(paths)

    @cached_property
    def linkable(self) -> bool:
        """Whether the lake's snapshot file is published as it is (it has the published columns)."""
        return lake_file_is_publishable(self.project, Path(self.ctx.snapshot_file))

    @cached_property
    def subscribers(self) -> pa.Table:
        """The snapshot, read once for recipients, the suppression check and the publish:
        only the columns they use, unless the publish must write every column itself."""
        columns = ["subscriber_id", "status", "email", *audience_field_columns(self.project)]
        snapshot = run_snapshot(self.paths, self.ctx)
        return sort_by_id(read_snapshot(snapshot, self.project.catalog, columns if self.linkable else None))

    @cached_property
    def suppressions(self) -> Suppressions:
        """The suppression list and the held rows of the run's snapshot (publish/audiences.py)."""
        return Suppressions(listed=read_suppression_list(self.paths),
                            held=read_held_rows(self.paths, self.ctx.snapshot_file),
                            snapshot_at=datetime.fromisoformat(self.ctx.snapshot_at) if self.ctx.snapshot_at else None)

    def _check_parent(self):
        previous = current_state(self.paths)
        if (previous.version if previous else None) != self.ctx.parent_version:
            raise UserError("another run published while this one was running; start this run again")
        return previous

    def evaluate(self) -> Evaluation:
        """The run's flags, written with their evaluation record to the workspace
        (the new version links both in, and the next run builds on them)."""
        paths, ctx, project = self.paths, self.ctx, self.project
        record = EvaluationRecord.of(project, ctx.params.as_of, ctx.snapshot_file, event_part_files(paths),
                                     root=Path(paths.data))
        flags = evaluate_flags(paths, ctx, project)
        write_flags(flags, self.workspace.flags_file)
        record.save(self.workspace.dir / RECORD_FILE)
        self.workspace.save_context(ctx)  # how the flags were made, for the run's summary
        compiled_sql = engine.compiled_sql_by_segment(project, ctx.params.as_of)
        return Evaluation(flags, member_counts(flags), compiled_sql)

    def history(self, flags: pa.Table) -> HistoryDelta:
        """Stays, changes and sizes against the published state this run started from."""
        return extend_history(self._check_parent(), flags, self.run_id, self.ctx.params.as_of,
                              segments=self.project.segments, out_dir=self.workspace.history_dir)

    def recipients(self, flags: pa.Table) -> dict[str, int]:
        """Recipients per audience; written to the workspace a part at a time (at 100M
        subscribers the table would not fit in memory), as the version publishes them."""
        return write_recipients(self.project, flags, self.subscribers, self.run_id,
                                self.workspace.recipients_file, self.suppressions)

    def publish(self, evaluation: Evaluation, history: HistoryDelta,
                keep_versions: int = DEFAULT_KEEP_VERSIONS) -> PublishedState:
        """Stage the new version and swap it in atomically (only after the blocking checks passed)."""
        ctx = self.ctx
        record = RunRecord(run_id=self.run_id, as_of=ctx.params.as_of, started_at=ctx.params.started_at,
                           snapshot=ctx.snapshot_name, snapshot_rows=ctx.snapshot_rows,
                           fingerprint=ctx.fingerprint)
        with writer_lock(self.paths):
            self._check_parent()
            return publish_version(
                self.paths, self.project, record, self.workspace.dir, history,
                subscribers=Path(ctx.snapshot_file) if self.linkable else self.subscribers,
                suppressions=suppressions_table(self.subscribers, self.suppressions),
                compiled_sql=evaluation.compiled_sql, keep_versions=keep_versions,
                inputs_signature=ctx.inputs_signature,
            )
