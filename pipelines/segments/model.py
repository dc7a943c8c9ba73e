"""Typed model of segment and audience definitions.

The loader builds these only from nodes that passed validation, so code that
receives a model can trust it: operators fit field types, values have the
right shape and are already normalized (dates are `datetime.date`, lists are
tuples, `between` is a `(low, high)` tuple).

Every node keeps its source position (`pos`) for error messages; positions are
excluded from dumps, so `definition_sha256` only changes when meaning does.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .fields import FieldCatalog


class Pos(BaseModel):
    """A 1-based line/column in a definition file."""

    model_config = ConfigDict(frozen=True)
    path: str
    line: int = 1
    col: int = 1

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"


class _Node(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)
    pos: Pos | None = Field(default=None, exclude=True, repr=False)

    # Two nodes are equal when they mean the same thing, wherever they stand in
    # which file: equality and hashing ignore positions (excluded from dumps).
    def _identity(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, default=str)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._identity() == other._identity()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._identity()))


class FieldFilter(_Node):
    kind: Literal["field"] = "field"
    field: str
    op: str
    value: Any = None


class SegmentFilter(_Node):
    kind: Literal["segment"] = "segment"
    segment: str
    op: Literal["is", "is_not"]


class EventCount(_Node):
    op: Literal["gt", "gte", "lt", "lte", "is"] = "gte"
    value: int = 1


class EventFilter(_Node):
    kind: Literal["event"] = "event"
    event: str
    op: Literal["performed", "not_performed"]
    in_last_days: int | None = None
    where: tuple[FieldFilter, ...] = ()
    count: EventCount = EventCount()

    def aggregate_key(self) -> str:
        """Identity of the event count this filter needs: (event, window, where).

        Filters that differ only in `op` or `count` share one aggregate, so the
        engine scans events once per distinct key.
        """
        payload = {
            "event": self.event,
            "in_last_days": self.in_last_days,
            "where": [w.model_dump(mode="json") for w in self.where],
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


Filter = Annotated[FieldFilter | SegmentFilter | EventFilter, Field(discriminator="kind")]


class Group(_Node):
    match: Literal["all", "any", "none"] = "all"
    filters: tuple[Filter, ...]


class Segment(_Node):
    key: str
    name: str
    description: str | None = None
    match: Literal["any", "all"] = "any"
    groups: tuple[Group, ...]
    path: str = Field(default="", exclude=True)

    def references(self) -> list[str]:
        """Keys of the segments this one reads (segment filters), in order."""
        return list(dict.fromkeys(f.segment for g in self.groups for f in g.filters if isinstance(f, SegmentFilter)))

    def event_filters(self) -> list[EventFilter]:
        return [f for g in self.groups for f in g.filters if isinstance(f, EventFilter)]

    def field_filters(self) -> list[FieldFilter]:
        return [f for g in self.groups for f in g.filters if isinstance(f, FieldFilter)]

    def definition_sha256(self) -> str:
        return sha256_of(self)


class Holdout(_Node):
    """A stable control group: held out iff sha256(salt:subscriber_id) % 10000 < percent * 100."""

    percent: float
    salt: str


class Audience(_Node):
    key: str
    name: str
    description: str | None = None
    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    holdout: Holdout | None = None
    path: str = Field(default="", exclude=True)

    def definition_sha256(self) -> str:
        return sha256_of(self)


class Project(BaseModel):
    """All definitions of one `segment_defs/` folder."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    catalog: FieldCatalog = Field(default_factory=FieldCatalog)
    segments: dict[str, Segment] = Field(default_factory=dict)
    audiences: dict[str, Audience] = Field(default_factory=dict)


def sha256_of(node: BaseModel) -> str:
    """A stable hash of a definition's meaning (not its formatting or comments)."""
    payload = node.model_dump(mode="json")
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


__all__ = [
    "Audience",
    "EventCount",
    "EventFilter",
    "FieldCatalog",
    "FieldFilter",
    "Filter",
    "Group",
    "Holdout",
    "Pos",
    "Project",
    "Segment",
    "SegmentFilter",
    "date",
]
