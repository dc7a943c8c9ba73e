"""Which source columns are catalog fields, which are extras, and header problems.

Names are trimmed and matched to catalog fields case-insensitively, as exports often
capitalise headers; an undeclared column keeps its name as written and is stored as text.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from ..segments.fields import REQUIRED_EVENT_FIELDS, REQUIRED_SUBSCRIBER_FIELDS, FieldCatalog
from .problems import FileRejected

KINDS = ("subscribers", "events", "suppressions")

# The suppression list (data-contract.md, "Sending safely"): addresses never to mail.
SUPPRESSION_FIELDS = {"email": "string", "reason": "string", "suppressed_at": "timestamp"}

# Internal column carried through staging: the source row number of each row.
ROW_COLUMN = "_lake_source_row"


@dataclass(frozen=True)
class TableSpec:
    """The fields one kind of landing file must provide, and how duplicates are settled."""

    kind: str  # one of KINDS
    fields: dict[str, str]  # name -> field type, catalog order
    required: tuple[str, ...]
    key: str  # subscriber_id (last row wins) or event_id (first row wins)

    @classmethod
    def for_kind(cls, kind: str, catalog: FieldCatalog) -> TableSpec:
        fields, required, key = {
            "subscribers": (catalog.subscriber, REQUIRED_SUBSCRIBER_FIELDS, "subscriber_id"),
            "events": (catalog.event, REQUIRED_EVENT_FIELDS, "event_id"),
            "suppressions": (SUPPRESSION_FIELDS, ("email",), "email"),
        }[kind]
        return cls(kind, dict(fields), required, key)

    def canonical(self, source_name: str) -> str:
        """The catalog name a source column stands for, or the trimmed name of an extra column."""
        name = source_name.strip()
        return self._by_lower.get(name.lower(), name)

    @cached_property
    def _by_lower(self) -> dict[str, str]:
        return {name.lower(): name for name in self.fields}


def match_header(source_names: list[str], spec: TableSpec) -> list[str]:
    """Canonical names for a header, or FileRejected naming what is wrong with it."""
    canonical: list[str] = []
    seen: dict[str, str] = {}
    for position, source in enumerate(source_names, start=1):
        name = spec.canonical(source)
        if not name:
            raise FileRejected(f"header column {position} has no name")
        if name == ROW_COLUMN:
            raise FileRejected(f"column name '{ROW_COLUMN}' is reserved for the lake's own use")
        if name in seen:
            raise FileRejected(f"column '{name}' appears twice in the header (as '{seen[name]}' and '{source}')")
        seen[name] = source
        canonical.append(name)
    check_required_columns(canonical, spec, source_names)
    return canonical


def check_required_columns(present: list[str], spec: TableSpec, header: list[str] | None = None) -> None:
    missing = [name for name in spec.required if name not in present]
    if not missing:
        return
    reason = f"missing required column{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)}"
    if header is not None and len(header) == 1:
        hint = next((sep for sep in (";", "\t", "|") if sep in header[0]), None)
        reason += f" (the header is a single column {header[0][:80]!r}"
        reason += f"; the file seems to use {hint!r} instead of a comma)" if hint else ")"
    raise FileRejected(reason)
