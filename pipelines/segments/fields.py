"""The field catalog: standard subscriber and event fields plus the custom ones
declared in `segment_defs/_fields.yaml`. Everything downstream (loader, validator,
compilers, ingest) reads types from here, so a column is never typed by guessing."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

FIELD_TYPES: tuple[str, ...] = ("string", "integer", "number", "boolean", "date", "timestamp", "list")

STANDARD_SUBSCRIBER_FIELDS: dict[str, str] = {
    **dict.fromkeys(("subscriber_id", "email", "status", "first_name", "last_name", "signup_form", "city", "state",
                     "country", "postal_code"), "string"),
    "age": "integer", "created_at": "timestamp", "tags": "list",
}
REQUIRED_SUBSCRIBER_FIELDS = ("subscriber_id", "email", "status")

STANDARD_EVENT_FIELDS: dict[str, str] = {
    **dict.fromkeys(("event_id", "subscriber_id", "event", "product", "campaign"), "string"),
    "amount": "number", "occurred_at": "timestamp",
}
REQUIRED_EVENT_FIELDS = ("event_id", "subscriber_id", "event", "occurred_at")

STATUSES = ("active", "unsubscribed", "bounced", "complained")

# Timestamps are stored as naive microsecond values that mean UTC.
ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(), "integer": pa.int64(), "number": pa.float64(), "boolean": pa.bool_(),
    "date": pa.date32(), "timestamp": pa.timestamp("us"), "list": pa.list_(pa.string()),
}


def arrow_type(field_type: str) -> pa.DataType:
    return ARROW_TYPES[field_type]


@dataclass(frozen=True)
class FieldCatalog:
    """Standard fields plus declared custom fields, by table."""

    subscriber: dict[str, str] = field(default_factory=lambda: dict(STANDARD_SUBSCRIBER_FIELDS))
    event: dict[str, str] = field(default_factory=lambda: dict(STANDARD_EVENT_FIELDS))

    @classmethod
    def with_custom(cls, subscriber_fields: dict[str, str], event_fields: dict[str, str]) -> FieldCatalog:
        return cls(subscriber={**STANDARD_SUBSCRIBER_FIELDS, **subscriber_fields},
                   event={**STANDARD_EVENT_FIELDS, **event_fields})

    def subscriber_schema(self) -> pa.Schema:
        return pa.schema([(name, arrow_type(t)) for name, t in self.subscriber.items()])

    def event_schema(self) -> pa.Schema:
        return pa.schema([(name, arrow_type(t)) for name, t in self.event.items()])
