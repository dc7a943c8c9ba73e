"""Planning shared by both compilers and every engine: the distinct event aggregates
(events are scanned once), the dependency waves (a segment after those it reads) and
the one clock (`as_of` as a naive UTC timestamp)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from graphlib import TopologicalSorter

from ..errors import UserError
from .model import EventFilter, Project, Segment
from .project_rules import find_cycles
from .utc import naive_utc

# Names the engines give to computed columns. A ':' cannot occur in a field name
# or a segment key, so these never collide with subscriber columns.
SEGMENT_PREFIX = "segment:"


def event_count_column(aggregate_key: str) -> str:
    return "event_count:" + aggregate_key


def segment_column(segment_key: str) -> str:
    return SEGMENT_PREFIX + segment_key


def evaluation_waves(project: Project) -> list[list[str]]:
    """Segment keys in dependency waves (each sorted): wave n only reads earlier waves. UserError
    on an unknown reference or a cycle: the validator reports these, so a guard for hand-built models."""
    refs = {key: seg.references() for key, seg in project.segments.items()}
    for key, targets in refs.items():
        for target in targets:
            if target not in refs:
                raise UserError(f"segment '{key}' references unknown segment '{target}'")
    cycles = find_cycles(refs)
    if cycles:
        raise UserError("segment reference cycle: " + " -> ".join(cycles[0]))
    sorter = TopologicalSorter(refs)
    sorter.prepare()
    waves: list[list[str]] = []
    while sorter.is_active():
        waves.append(sorted(sorter.get_ready()))
        sorter.done(*waves[-1])
    return waves


def distinct_event_aggregates(segments: Iterable[Segment]) -> dict[str, EventFilter]:
    """aggregate_key -> the first filter using it, in order of first use."""
    out: dict[str, EventFilter] = {}
    for seg in segments:
        for f in seg.event_filters():
            out.setdefault(f.aggregate_key(), f)
    return out


@dataclass(frozen=True)
class EvaluationPlan:
    """Everything an engine needs besides the predicates themselves."""

    as_of: datetime
    waves: list[list[str]]
    aggregates: dict[str, EventFilter]
    subscriber_fields: list[str]  # subscriber columns any predicate reads, subscriber_id first
    event_fields: list[str]  # event columns the aggregates read

    @property
    def event_names(self) -> list[str]:
        """Distinct event names any aggregate counts (lets engines prune the scan)."""
        return sorted({f.event for f in self.aggregates.values()})

    @property
    def segment_keys(self) -> list[str]:
        return [key for wave in self.waves for key in wave]


def build_plan(project: Project, as_of: datetime) -> EvaluationPlan:
    waves = evaluation_waves(project)
    ordered = [project.segments[key] for wave in waves for key in wave]
    aggregates = distinct_event_aggregates(ordered)
    subscriber_fields = ["subscriber_id", *(f.field for seg in ordered for f in seg.field_filters())]
    event_fields = ["subscriber_id", "event", "occurred_at", *(w.field for f in aggregates.values() for w in f.where)]
    return EvaluationPlan(naive_utc(as_of), waves, aggregates, list(dict.fromkeys(subscriber_fields)),
                          list(dict.fromkeys(event_fields)))
