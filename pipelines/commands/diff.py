"""`segments diff KEY`: the edited definition against the last published membership.

KEY and the segments reading it are evaluated on exactly the last published run's
inputs, and audiences recomputed with the *published* audience definitions and the
run's recipient rules, so every change shown is the effect of this definition alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from ..core import schemas
from ..core.settings import Paths
from ..engine.incremental import subproject
from ..errors import UserError
from ..publish.audiences import Suppressions, compute_recipients
from ..publish.state import current_state
from ..segments.model import Audience, Project
from ..segments.project_rules import dependents_of
from ..warehouse_query import open_warehouse
from .common import evaluate_segments, load_definitions, load_inputs, published_segments, require_segment


@dataclass
class SegmentChange:
    segment: str
    before: int  # published members (0 when new)
    after: int  # members with the edited definition
    entered: int
    exited: int


@dataclass
class AudienceChange:
    audience: str
    name: str
    before: int  # published recipients
    after: int  # recipients with the edited definition
    added: int  # recipients who would be added
    removed: int  # recipients who would be removed
    change: int  # after - before


@dataclass
class Diff:
    segment: str
    status: str  # changed | unchanged | new | deleted
    run_id: str  # the published run compared against
    as_of: datetime
    snapshot: str
    change: SegmentChange
    entered_sample: list[dict]
    exited_sample: list[dict]
    dependants: list[SegmentChange]
    audiences: list[AudienceChange]
    notes: list[str] = field(default_factory=list)


def diff(paths: Paths, key: str, *, engine: str, sample_size: int) -> Diff:
    state = current_state(paths)
    if state is None:
        raise UserError(f"no published run to compare with (no warehouse at {paths.warehouse}): "
                        "run `segments run` first")
    defs = load_definitions(paths)
    project = defs.project
    with open_warehouse(paths) as con:
        published = published_segments(con)
        if key not in defs.files and key in published:
            status = "deleted"
        else:
            segment = require_segment(defs, key, published=published)
            status = ("new" if key not in published
                      else "unchanged" if published[key]["definition_sha256"] == segment.definition_sha256()
                      else "changed")

        inputs = load_inputs(paths, project, state.as_of, snapshot_source=state.snapshot)
        references = {k: s.references() for k, s in project.segments.items()}
        affected = [key] if status == "deleted" else [key, *dependents_of(references, key)]
        live = [k for k in affected if k in project.segments]
        after = evaluate_segments(project, live, inputs, engine)
        after = after.filter(pc.is_in(after.column("segment"), value_set=pa.array(affected, pa.string())))

        # Registered on this command's own connection, closed (with them) at the end of the block.
        con.register("diff_after", after)
        con.register("diff_subscribers", inputs.subscribers.select(["subscriber_id", "email"]))
        counts = _changes(con, "segment", affected, "segment_membership", "diff_after")
        entered_sample = _sample(con, key, "entered", sample_size)
        exited_sample = _sample(con, key, "exited", sample_size)
        audiences = _audience_changes(con, project, after, affected, inputs.subscribers)

    result = Diff(
        segment=key, status=status, run_id=state.run_id, as_of=state.as_of, snapshot=inputs.snapshot,
        change=SegmentChange(key, *counts[key]), entered_sample=entered_sample, exited_sample=exited_sample,
        dependants=[SegmentChange(k, *counts[k]) for k in affected[1:]], audiences=audiences,
    )
    if inputs.snapshot != state.snapshot:
        result.notes.append(f"the published snapshot {state.snapshot} is no longer in the lake; "
                            f"compared on {inputs.snapshot}")
    edited_refs = [k for k in subproject(project, live).segments if k not in affected and k in published
                   and published[k]["definition_sha256"] != project.segments[k].definition_sha256()]
    if edited_refs:
        result.notes.append("also edited since the last run, and read by the compared segments: "
                            + ", ".join(sorted(edited_refs)))
    other_problems = [p for p in defs.problems if p.path != str(defs.files.get(key, ""))]
    if other_problems:
        result.notes.append(f"{len(other_problems)} problem(s) in other definitions (see `segments validate`); "
                            "a run refuses to start until they are fixed")
    if status == "deleted":
        result.notes.append(f"'{key}' has no definition file any more: the next run closes its memberships "
                            "(its history stays in segment_membership_history)")
    return result


def _changes(con, column: str, keys: list[str], old: str, new: str) -> dict[str, tuple[int, int, int, int]]:
    """key -> (before, after, entering, leaving) between the published (`old`) and
    the new (`new`) rows of `keys`, both relations of (`column`, subscriber_id)."""
    rows = con.execute(
        f"""
        WITH k AS (SELECT unnest($keys) AS k),
        old AS (SELECT {column} AS k, subscriber_id FROM {old} WHERE {column} IN (SELECT k FROM k)),
        new AS (SELECT {column} AS k, subscriber_id FROM {new})
        SELECT k.k,
               (SELECT count(*) FROM old o WHERE o.k = k.k),
               (SELECT count(*) FROM new n WHERE n.k = k.k),
               (SELECT count(*) FROM (SELECT subscriber_id FROM new n WHERE n.k = k.k
                                      EXCEPT SELECT subscriber_id FROM old o WHERE o.k = k.k)),
               (SELECT count(*) FROM (SELECT subscriber_id FROM old o WHERE o.k = k.k
                                      EXCEPT SELECT subscriber_id FROM new n WHERE n.k = k.k))
        FROM k ORDER BY k.k
        """,
        {"keys": keys},
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


def _sample(con, key: str, which: str, size: int) -> list[dict]:
    new, old = ("diff_after", "segment_membership") if which == "entered" else ("segment_membership", "diff_after")
    return con.execute(
        f"""
        WITH ids AS (
            SELECT subscriber_id FROM {new} WHERE segment = $key
            EXCEPT SELECT subscriber_id FROM {old} WHERE segment = $key
        )
        SELECT i.subscriber_id, s.email FROM ids i LEFT JOIN diff_subscribers s USING (subscriber_id)
        ORDER BY md5(i.subscriber_id), i.subscriber_id LIMIT $size
        """,
        {"key": key, "size": size},
    ).to_arrow_table().to_pylist()


def _published_audiences(con) -> dict[str, Audience]:
    rows = con.execute("SELECT audience, name, include, exclude FROM audiences ORDER BY audience").fetchall()
    return {a: Audience(key=a, name=name or a, include=tuple(inc or ()), exclude=tuple(exc or ()))
            for a, name, inc, exc in rows}


def _audience_changes(con, project: Project, after: pa.Table, affected: list[str],
                      subscribers: pa.Table) -> list[AudienceChange]:
    touched = {k: a for k, a in _published_audiences(con).items() if set(a.include + a.exclude) & set(affected)}
    if not touched:
        return []
    read = sorted({s for a in touched.values() for s in a.include + a.exclude})
    kept = [s for s in read if s not in affected]
    before_membership = con.execute(
        "SELECT segment, subscriber_id FROM segment_membership WHERE list_contains($keep, segment)",
        {"keep": kept},
    ).to_arrow_table()
    membership = pa.concat_tables([
        before_membership.cast(after.schema),
        after.filter(pc.is_in(after.column("segment"), value_set=pa.array(read, pa.string()))),
    ])
    # The published run's suppressed addresses (its list, statuses and held rows), as the run applied them.
    suppressed = con.execute("SELECT email, reason, source, suppressed_at FROM suppressions").to_arrow_table()
    recipients = compute_recipients(
        Project(catalog=project.catalog, segments={}, audiences=touched), membership, subscribers, run_id="diff",
        suppressions=Suppressions(listed=suppressed.cast(schemas.SUPPRESSION_LIST)),
    )
    con.register("diff_recipients", recipients.select(["audience", "subscriber_id"]))
    changes = _changes(con, "audience", sorted(touched), "recipients", "diff_recipients")
    return [AudienceChange(a, touched[a].name, before, after, added, removed, after - before)
            for a, (before, after, added, removed) in changes.items()]
