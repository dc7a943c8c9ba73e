"""A run's parameters, what its first step decided, and its scratch folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pydantic import TypeAdapter

from ..core.settings import Paths
from ..errors import UserError
from ..publish.versions import FLAGS_FILE, RECIPIENTS_FILE


@dataclass
class RunParams:
    run_id: str
    as_of: datetime
    started_at: datetime
    engine: str = "duckdb"
    force: bool = False
    full: bool = False
    allow_future: bool = False  # accept an as_of more than clock.FUTURE_TOLERANCE after started_at
    overtaken_ok: bool = False  # a scheduled tick a later run overtook ends as unchanged, not refused


@dataclass
class RunContext:
    """What the first step decided, read by the later step of the same run."""

    params: RunParams
    snapshot_file: str = ""
    snapshot_name: str = ""
    snapshot_at: str = ""
    snapshot_rows: int = 0
    fingerprint: str = ""  # the inputs' content (run/prepare.py)
    inputs_signature: str | None = None  # the inputs as they lie on disk (run/inputs.py)
    parent_version: str | None = None
    unchanged_run_id: str | None = None  # set when the same inputs were already published
    ingested: list[str] = field(default_factory=list)
    quarantined_rows: int = 0
    row_counts: dict[str, list[int]] = field(default_factory=dict)  # new file -> [loaded, quarantined]
    warnings: list[str] = field(default_factory=list)
    mode: str = "full"  # how the flags were made: "full" or "incremental: ..." (engine/incremental.py)

    @property
    def unchanged(self) -> bool:
        return self.unchanged_run_id is not None


_CONTEXT_JSON = TypeAdapter(RunContext)


class Workspace:
    """`DATA/work/<run_id>/`: the run's context (for the publishing step and a re-execution)
    and the files the new version links in. Removed when a later run starts."""

    def __init__(self, paths: Paths, run_id: str):
        self.dir = Path(paths.data) / "work" / run_id
        self.context_file = self.dir / "context.json"
        self.flags_file = self.dir / FLAGS_FILE
        self.recipients_file = self.dir / RECIPIENTS_FILE
        self.history_dir = self.dir / "history"

    def save_context(self, ctx: RunContext) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.context_file.write_bytes(_CONTEXT_JSON.dump_json(ctx, indent=2))

    def load_context(self) -> RunContext:
        if not self.context_file.exists():
            raise UserError(f"run workspace {self.dir} is missing: materialize the whole refresh job")
        return _CONTEXT_JSON.validate_json(self.context_file.read_bytes())
