"""Shared steps of the inspecting commands: definitions, clock, snapshot, evaluation.

Nothing here writes: segments are evaluated in memory with the real engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ..core.clock import format_ts, parse_as_of, utc_now
from ..core.duck import scratch_connection
from ..core.settings import Paths
from ..engine import evaluate
from ..engine.incremental import subproject
from ..errors import UserError
from ..lake.snapshots import list_snapshots, read_events, read_snapshot, snapshot_at_or_before
from ..publish.state import PublishedState, current_state
from ..segments.loader import discover, load_project
from ..segments.model import EventFilter, Project, Segment
from ..segments.problems import Problem
from ..segments.to_sql import event_counts_cte
from ..segments.yaml_tree import did_you_mean


class DefinitionProblems(UserError):
    """A needed definition has problems: one line, the first `PATH:LINE:COLUMN: message` and how many more."""

    def __init__(self, problems: list[Problem]):
        first = str(problems[0]) if problems else "invalid definition"
        more = f" (and {len(problems) - 1} more; run `segments validate`)" if len(problems) > 1 else ""
        super().__init__(first + more)


def unknown_segment_message(key: str, known: Iterable[str]) -> str:
    return f"unknown segment '{key}'{did_you_mean(key, known)}"


# --------------------------------------------------------------------------- definitions


def segment_files(defs: Path | str, kind: str = "segment") -> dict[str, Path]:
    """key -> file of every segment (or audience) file, the first owning a key defined twice as in the
    loader. Keys are not validated: a broken file still has a key to point at."""
    files: dict[str, Path] = {}
    for f in discover(defs):
        if f.kind == kind:
            files.setdefault(f.key, Path(f.path))
    return files


@dataclass
class Definitions:
    project: Project
    problems: list[Problem]
    files: dict[str, Path]  # segment key -> file

    def problems_of(self, path: Path | str) -> list[Problem]:
        return [p for p in self.problems if Path(p.path) == Path(path)]


def load_definitions(paths: Paths) -> Definitions:
    project, problems = load_project(paths.defs)
    return Definitions(project, problems, segment_files(paths.defs))


def require_segment(defs: Definitions, key: str, *, published: Iterable[str] = ()) -> Segment:
    """The runnable segment `key`, or why not: its file's problems (or, when it
    only depends on a broken segment, every problem), or an unknown-key line."""
    if key in defs.project.segments:
        return defs.project.segments[key]
    if key in defs.files:
        raise DefinitionProblems(defs.problems_of(defs.files[key]) or defs.problems)
    raise UserError(unknown_segment_message(key, {*defs.files, *published}))


# --------------------------------------------------------------------------- clock and inputs


def resolve_as_of(paths: Paths, text: str | None) -> tuple[datetime, PublishedState | None]:
    """(as_of, published state): `--as-of` if given, else the last published
    run's as_of, else now (UTC)."""
    state = current_state(paths)
    return parse_as_of(text) or (state.as_of if state is not None else utc_now()), state


@dataclass
class Inputs:
    as_of: datetime
    snapshot: str  # landing file name of the snapshot
    subscribers: pa.Table
    events: pa.Table


def load_inputs(paths: Paths, project: Project, as_of: datetime, *, snapshot_source: str | None = None,
                subscriber_id: str | None = None) -> Inputs:
    """The lake snapshot at or before `as_of` (or the one named `snapshot_source`)
    and the events up to `as_of`, optionally only those of one subscriber."""
    named = [s for s in list_snapshots(paths) if s.source == snapshot_source] if snapshot_source else []
    info = named[-1] if named else snapshot_at_or_before(paths, as_of)
    if info is None:
        raise UserError(f"no subscriber snapshot at or before {format_ts(as_of)} in the lake ({paths.lake}): "
                        "run `segments run` first (it ingests the landing files)")
    subscribers = read_snapshot(info, project.catalog)
    events = read_events(paths, project.catalog, as_of)
    if subscriber_id is not None:
        subscribers = subscribers.filter(pc.equal(subscribers.column("subscriber_id"), subscriber_id))
        events = events.filter(pc.equal(events.column("subscriber_id"), subscriber_id))
    return Inputs(as_of, info.source, subscribers, events)


def evaluate_segments(project: Project, keys: Iterable[str], inputs: Inputs, engine: str) -> pa.Table:
    """Membership (segment, subscriber_id) of `keys` and the segments they read, by the real engine."""
    return evaluate(subproject(project, keys), inputs.subscribers, inputs.events, inputs.as_of, engine=engine)


def event_counts(project: Project, filters: Iterable[EventFilter], events: pa.Table,
                 as_of: datetime) -> dict[str, dict[str, int]]:
    """aggregate_key -> {subscriber_id: number of matching events}, counted with
    the compiler's own event condition (the one the engines use)."""
    aggregates: dict[str, EventFilter] = {}  # filters sharing an aggregate share one count
    for f in filters:
        aggregates.setdefault(f.aggregate_key(), f)
    if not aggregates:
        return {}
    names = {key: f"n_{i}" for i, key in enumerate(aggregates)}
    sql = event_counts_cte(aggregates, project.catalog, as_of, lambda key: names[key]).sql(dialect="duckdb")
    with scratch_connection() as con:
        con.register("events", events)
        rows = con.execute(sql).fetchall()
    return {key: {row[0]: int(row[i + 1]) for row in rows} for i, key in enumerate(aggregates)}


# --------------------------------------------------------------------------- published state


def published_segments(con) -> dict[str, dict]:
    """segment -> {name, members, definition_sha256, sql} of the published state ({} without one)."""
    if con is None:
        return {}
    rows = con.execute("SELECT segment, name, members, definition_sha256, sql FROM segments").fetchall()
    return {r[0]: {"name": r[1], "members": r[2], "definition_sha256": r[3], "sql": r[4]} for r in rows}

