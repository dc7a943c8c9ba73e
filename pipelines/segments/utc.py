"""The project-wide convention for instants: naive datetimes meaning UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, time


def naive_utc(as_of: datetime | date) -> datetime:
    """`as_of` as a naive datetime meaning UTC (the project-wide convention): an aware
    datetime is converted to UTC; a bare date means its midnight UTC."""
    if not isinstance(as_of, datetime):
        return datetime.combine(as_of, time())
    if as_of.tzinfo is not None:
        return as_of.astimezone(UTC).replace(tzinfo=None)
    return as_of
