"""`segments explain KEY SUBSCRIBER_ID`: why a subscriber is or is not a member.

Each filter and group becomes a tiny segment (a `_` key no file can have), evaluated
by the real engine on the subscriber's own inputs: the explanation cannot disagree with a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ..cli_render import display_value
from ..core.clock import format_ts
from ..core.settings import Paths
from ..errors import UserError
from ..segments.model import EventFilter, FieldFilter, Group, Project, Segment
from ..warehouse_query import open_warehouse
from .common import (
    evaluate_segments,
    event_counts,
    load_definitions,
    load_inputs,
    require_segment,
    resolve_as_of,
)
from .describe import describe_count, describe_filter


@dataclass
class FilterVerdict:
    kind: str  # field | event | segment
    text: str  # the filter in words
    value: str  # the subscriber's value / event count / membership, in words
    held: bool
    observed: object = None  # the same, as data: field value, event count, or membership (bool)


@dataclass
class GroupVerdict:
    number: int  # 1-based, as people count groups
    match: str
    filters: list[FilterVerdict]
    held: bool


@dataclass
class Explanation:
    segment: str
    name: str
    subscriber_id: str
    as_of: datetime
    snapshot: str
    status: str | None
    match: str
    groups: list[GroupVerdict]
    member: bool
    published_member: bool | None = None  # in the last published membership (same as_of only)
    published_run_id: str | None = None
    notes: list[str] = field(default_factory=list)


def explain(paths: Paths, key: str, subscriber_id: str, *, as_of: str | None = None,
            engine: str = "duckdb") -> Explanation:
    defs = load_definitions(paths)
    segment = require_segment(defs, key)
    clock, state = resolve_as_of(paths, as_of)
    project = defs.project
    inputs = load_inputs(paths, project, clock, subscriber_id=subscriber_id)
    if inputs.subscribers.num_rows == 0:
        raise UserError(f"unknown subscriber '{subscriber_id}': not in snapshot {inputs.snapshot} "
                        f"(the latest at or before {format_ts(clock)})")
    row = inputs.subscribers.slice(0, 1).to_pylist()[0]

    # One tiny segment per group (`_explain_g0`) and per filter (`_explain_g0_f1`), evaluated with it.
    probes: dict[str, Segment] = {}
    for gi, group in enumerate(segment.groups):
        name, gkey = f"{key} group {gi + 1}", f"_explain_g{gi}"
        probes[gkey] = Segment(key=gkey, name=name, groups=(group,))
        for fi, f in enumerate(group.filters):
            probes[f"{gkey}_f{fi}"] = Segment(key=f"{gkey}_f{fi}", name=f"{name} filter {fi + 1}",
                                              groups=(Group(match="all", filters=(f,)),))
    with_probes = Project(catalog=project.catalog, segments={**project.segments, **probes})
    membership = evaluate_segments(with_probes, [key, *probes], inputs, engine)
    holds = set(membership.column("segment").to_pylist())

    counts = event_counts(project, segment.event_filters(), inputs.events, inputs.as_of)

    groups: list[GroupVerdict] = []
    for gi, group in enumerate(segment.groups):
        verdicts = []
        for fi, f in enumerate(group.filters):
            if isinstance(f, FieldFilter):
                raw = row.get(f.field)
                if raw is None and project.catalog.subscriber.get(f.field) == "list":
                    raw = []  # a missing list is the empty list (spec, rule 2)
                kind, value, observed = "field", f"{f.field} = {display_value(raw)}", raw
            elif isinstance(f, EventFilter):
                n = counts.get(f.aggregate_key(), {}).get(subscriber_id, 0)
                kind, observed = "event", n
                value = f"{n} matching event{'s' if n != 1 else ''} (needs {describe_count(f)})"
            else:  # a segment filter: the model has three filter kinds
                kind, observed = "segment", f.segment in holds
                value = f"{'member' if observed else 'not a member'} of {f.segment}"
            held = f"_explain_g{gi}_f{fi}" in holds
            verdicts.append(FilterVerdict(kind, describe_filter(f), value, held, observed))
        groups.append(GroupVerdict(gi + 1, group.match, verdicts, f"_explain_g{gi}" in holds))

    result = Explanation(
        segment=key, name=segment.name, subscriber_id=subscriber_id, as_of=inputs.as_of,
        snapshot=inputs.snapshot, status=row.get("status"), match=segment.match, groups=groups,
        member=key in holds,
    )
    if state is not None and state.as_of == inputs.as_of:
        with open_warehouse(paths) as con:
            found = con.execute("SELECT count(*) FROM segment_membership WHERE segment = ? AND subscriber_id = ?",
                                [key, subscriber_id]).fetchall()[0][0]
        result.published_member, result.published_run_id = bool(found), state.run_id
        if result.published_member != result.member:
            result.notes.append(f"the last published run ({state.run_id}) has this subscriber "
                                f"{'in' if result.published_member else 'out of'} the segment: the "
                                f"definition or the inputs changed since; `segments diff {key}` shows the "
                                "whole effect")
    if result.status and result.status != "active":
        result.notes.append(f"status is '{result.status}': segments include every status, but no audience "
                            "sends to this subscriber")
    return result
