"""`segments preview FILE|KEY`: a draft file or a saved segment evaluated on the lake, writing nothing.

A draft's references and fields resolve against the definitions folder; overlaps are
measured against the published membership of the largest published segments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ..core.clock import format_ts
from ..core.duck import scratch_connection
from ..core.settings import Paths
from ..core.sql import identifier
from ..errors import UserError
from ..segments.loader import AUDIENCES_DIR, load_segment_file
from ..segments.model import Project, Segment
from ..warehouse_query import open_warehouse
from .common import (
    DefinitionProblems,
    Definitions,
    evaluate_segments,
    event_counts,
    load_definitions,
    load_inputs,
    require_segment,
    resolve_as_of,
)


@dataclass
class Overlap:
    segment: str
    name: str
    members: int  # published members of that segment
    shared: int  # of them, also in the previewed definition
    share_of_preview: float | None  # shared / previewed members
    share_of_segment: float | None  # shared / that segment's members


@dataclass
class Preview:
    segment: str
    name: str
    source: str  # the definition file
    saved: bool  # a segment of the definitions folder (else a draft file)
    as_of: datetime
    snapshot: str
    engine: str
    members: int
    subscribers: int
    share: float | None
    sample_columns: list[str]
    sample: list[dict]
    overlaps: list[Overlap]
    overlap_run_id: str | None = None
    overlap_as_of: datetime | None = None
    published_members: int | None = None  # the saved segment's size in the last published run
    notes: list[str] = field(default_factory=list)


def load_draft(paths: Paths, defs: Definitions, file: Path) -> Segment:
    """A segment file anywhere, validated against the definitions folder."""
    if not file.is_file():
        raise UserError(f"segment file not found: {file}")
    if file.resolve().is_relative_to((Path(paths.defs) / AUDIENCES_DIR).resolve()):
        raise UserError(f"{file} is an audience definition; preview takes a segment file or key")
    key = file.stem
    project = defs.project
    # Every other segment of the folder may be referenced; broken ones map to
    # None so a reference to them is not misreported as unknown.
    known: dict[str, Segment | None] = {k: None for k in defs.files if k != key}
    known.update({k: s for k, s in project.segments.items() if k != key})
    segment, problems = load_segment_file(file, project.catalog, known)
    if problems or segment is None:
        raise DefinitionProblems(problems)
    broken = [ref for ref in segment.references() if ref not in project.segments]
    if broken:
        raise DefinitionProblems([p for ref in broken for p in defs.problems_of(defs.files[ref])] or defs.problems)
    return segment


def preview(paths: Paths, target: str, *, as_of: str | None, engine: str, sample_size: int) -> Preview:
    defs = load_definitions(paths)
    if Path(target).is_file() or target.endswith((".yaml", ".yml")) or "/" in target or "\\" in target:
        file = Path(target)
        segment = load_draft(paths, defs, file)
        source = str(file)
        saved = defs.files.get(segment.key) is not None and Path(defs.files[segment.key]).resolve() == file.resolve()
    else:
        segment = require_segment(defs, target)
        source, saved = str(defs.files[target]), True
    key = segment.key
    project = defs.project

    clock, state = resolve_as_of(paths, as_of)
    inputs = load_inputs(paths, project, clock)
    with_draft = Project(catalog=project.catalog, segments={**project.segments, key: segment})
    membership = evaluate_segments(with_draft, [key], inputs, engine)
    members = membership.filter(pc.equal(membership.column("segment"), key)).select(["subscriber_id"])
    total = pc.count_distinct(inputs.subscribers.column("subscriber_id")).as_py()

    result = Preview(
        segment=key, name=segment.name, source=source, saved=saved, as_of=inputs.as_of,
        snapshot=inputs.snapshot, engine=engine, members=members.num_rows, subscribers=total,
        share=(members.num_rows / total) if total else None, sample_columns=[], sample=[], overlaps=[],
    )
    _fill_sample(result, project, segment, inputs, members, sample_size)

    other_problems = [p for p in defs.problems if Path(p.path).resolve() != Path(source).resolve()]
    if other_problems:
        result.notes.append(f"{len(other_problems)} problem(s) in other definitions "
                            "(see `segments validate`); a run refuses to start until they are fixed")
    with open_warehouse(paths, required=False) as con:
        if con is None or state is None:
            result.notes.append("no published run yet: overlaps with other segments need `segments run`")
            return result
        result.overlap_run_id, result.overlap_as_of = state.run_id, state.as_of
        if state.as_of != inputs.as_of:
            result.notes.append(f"overlaps use the published membership of run {state.run_id} (as_of "
                                f"{format_ts(state.as_of)}), not membership as of {format_ts(inputs.as_of)}")
        rows = con.execute("SELECT members FROM segments WHERE segment = ?", [key]).fetchall()
        result.published_members = rows[0][0] if rows else None
        result.overlaps = _overlaps(con, key, members)
    return result


def _fill_sample(result: Preview, project, segment: Segment, inputs, members: pa.Table, size: int) -> None:
    fields = ["subscriber_id", "email", *(f.field for f in segment.field_filters())]
    columns = [c for c in dict.fromkeys(fields) if c in inputs.subscribers.column_names]
    if size <= 0 or members.num_rows == 0:
        result.sample_columns = columns
        return
    with scratch_connection() as con:
        con.register("snapshot_subscribers", inputs.subscribers.select(columns))
        con.register("preview_members", members)
        quoted = ", ".join(f"s.{identifier(c)}" for c in columns)
        # A spread-out but reproducible sample: ordered by a hash of the id.
        sample = con.sql(
            f"""SELECT {quoted} FROM snapshot_subscribers s
                SEMI JOIN preview_members m ON m.subscriber_id = s.subscriber_id
                ORDER BY md5(s.subscriber_id), s.subscriber_id LIMIT ?""",
            params=[int(size)],
        ).to_arrow_table()
    rows = sample.to_pylist()
    for r in rows:  # a missing list is the empty list (spec, rule 2)
        for c in columns:
            if r[c] is None and project.catalog.subscriber.get(c) == "list":
                r[c] = []
    filters = segment.event_filters()
    labels: dict[str, str] = {}
    for f in filters:
        label = f"{f.event} events" + (f" (last {f.in_last_days}d)" if f.in_last_days is not None else "")
        if f.where:
            label += " where " + ", ".join(f"{w.field} {w.op}" for w in f.where)
        while label in labels.values() or label in columns:
            label += "'"
        labels.setdefault(f.aggregate_key(), label)
    if filters:
        ids = pa.array([r["subscriber_id"] for r in rows], pa.string())
        events = inputs.events.filter(pc.is_in(inputs.events.column("subscriber_id"), value_set=ids))
        counts = event_counts(project, filters, events, inputs.as_of)
        for r in rows:
            for agg, label in labels.items():
                r[label] = counts.get(agg, {}).get(r["subscriber_id"], 0)
    result.sample_columns = [*columns, *labels.values()]
    result.sample = rows


def _overlaps(con, key: str, members: pa.Table) -> list[Overlap]:
    """Overlaps with the 5 largest published segments."""
    con.register("preview_members", members)  # on the command's own connection, closed after
    rows = con.execute(
        """
        WITH top AS (
            SELECT segment, name, members FROM segments
            WHERE segment <> ? ORDER BY members DESC, segment LIMIT 5
        )
        SELECT t.segment, t.name, t.members,
               (SELECT count(*) FROM segment_membership m
                WHERE m.segment = t.segment
                  AND m.subscriber_id IN (SELECT subscriber_id FROM preview_members)) AS shared
        FROM top t ORDER BY t.members DESC, t.segment
        """,
        [key],
    ).fetchall()
    n = members.num_rows
    return [Overlap(segment=s, name=name, members=size, shared=shared,
                    share_of_preview=(shared / n) if n else None,
                    share_of_segment=(shared / size) if size else None)
            for s, name, size, shared in rows]
