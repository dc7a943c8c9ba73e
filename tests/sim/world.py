"""The simulated world: subscribers who come, go and change status, their
events, and suppression exports; and the landing files that carry them, in
every format (CSV, CSV.gz, JSONL, Parquet) and size (0 rows, 1 row, more).

The world keeps the truth as Python values (the oracle's input); files are only
one way of writing it down, so a reader bug shows up as a membership diff.
Timestamps are naive datetimes in UTC.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

STATES = ["NY", "ny", "CA", "TX", "MA"]
CITIES = ["New York", "Buffalo", "Austin", "Boston", None]
TAGS = ["webinar-attendee", "VIP", "newsletter", "new-customer", "Webinar-Attendee"]
NAMES = ["Ann", "Bob", "Cy", "Dee", "Eve", None]
NON_ACTIVE = ["unsubscribed", "bounced", "complained"]
EVENTS = ["purchase", "email_open", "email_click"]
PRODUCTS = ["mug", "shirt", "hoodie", None]
FORMATS = ["csv", "csv.gz", "jsonl", "parquet"]

SUBSCRIBER_TYPES = {
    "subscriber_id": "string", "email": "string", "status": "string", "first_name": "string",
    "city": "string", "state": "string", "tags": "list", "age": "integer", "created_at": "timestamp",
    "loyalty_points": "integer", "vip": "boolean",
}
EVENT_TYPES = {
    "event_id": "string", "subscriber_id": "string", "event": "string", "occurred_at": "timestamp",
    "amount": "number", "product": "string", "delivered_at": "timestamp",
}
SUPPRESSION_TYPES = {"email": "string", "reason": "string", "suppressed_at": "timestamp"}

ARROW = {
    "string": pa.string(), "list": pa.list_(pa.string()), "integer": pa.int64(), "number": pa.float64(),
    "boolean": pa.bool_(), "timestamp": pa.timestamp("us", tz="UTC"), "date": pa.date32(),
}


def stamp(ts: datetime) -> str:
    return ts.strftime("%Y%m%dT%H%M%SZ")


def norm_email(email: str) -> str:
    return email.strip().lower()


@dataclass
class LandedFile:
    """One file put into DATA/landing/: what it was, and whether ingest should take it."""

    kind: str  # subscribers | events | suppressions
    name: str
    sha256: str
    at: datetime  # the time in its name (None-like for a bad name: the landing time)
    rows: list[dict]
    accepted: bool = True  # False: it must be rejected (bad name, unreadable)
    held: bool = False  # a snapshot the drop rule holds back until a forced run
    quarantined: tuple[int, ...] = ()  # row numbers ingest must quarantine


@dataclass
class World:
    rng: random.Random
    features: object
    subscribers: dict[str, dict] = field(default_factory=dict)
    landed: list[LandedFile] = field(default_factory=list)
    next_id: int = 1
    next_event: int = 1
    name_counter: int = 0

    # ---- the truth -----------------------------------------------------------------

    def new_subscriber(self, now: datetime) -> dict:
        sid = f"s{self.next_id:05d}"
        self.next_id += 1
        rng = self.rng
        email = f"{sid}@example.com"
        if self.subscribers and rng.random() < 0.08:
            # A shared address, in another case: suppression and de-duplication are by address.
            other = rng.choice(sorted(self.subscribers))
            email = self.subscribers[other]["email"].upper() if rng.random() < 0.5 else self.subscribers[other]["email"]
        row = {
            "subscriber_id": sid,
            "email": email,
            "status": "active" if rng.random() < 0.85 else rng.choice(NON_ACTIVE),
            "first_name": rng.choice(NAMES),
            "city": rng.choice(CITIES),
            "state": rng.choice(STATES + [None]),
            "tags": sorted(set(rng.sample(TAGS, rng.randint(0, 2)))) or None,
            "age": rng.choice([None, rng.randint(18, 80)]),
            "created_at": (now - timedelta(days=rng.randint(0, 60), seconds=rng.randint(0, 86399))),
            "loyalty_points": rng.choice([None, rng.randint(0, 1000)]),
            "vip": rng.choice([None, True, False]),
        }
        return row

    def churn(self, now: datetime, *, size: int) -> None:
        """One day's changes: joiners, leavers, status flips (both ways), edits."""
        rng = self.rng
        if not self.subscribers:
            for _ in range(size):
                row = self.new_subscriber(now)
                self.subscribers[row["subscriber_id"]] = row
            return
        ids = sorted(self.subscribers)
        for sid in rng.sample(ids, max(1, len(ids) // 20)):
            if len(self.subscribers) > 3:
                del self.subscribers[sid]
        for _ in range(max(1, size // 15)):
            row = self.new_subscriber(now)
            self.subscribers[row["subscriber_id"]] = row
        for sid in sorted(self.subscribers):
            row = self.subscribers[sid]
            r = rng.random()
            if row["status"] == "active" and r < 0.08:
                row["status"] = rng.choice(NON_ACTIVE)
            elif row["status"] != "active" and r < 0.25:
                row["status"] = "active"  # resubscribed
            if rng.random() < 0.1:
                row["state"] = rng.choice(STATES + [None])
            if rng.random() < 0.1:
                row["tags"] = sorted(set(rng.sample(TAGS, rng.randint(0, 2)))) or None
            if rng.random() < 0.05:
                row["loyalty_points"] = rng.choice([None, rng.randint(0, 1000)])

    def make_events(self, now: datetime, n: int) -> list[dict]:
        rng = self.rng
        ids = sorted(self.subscribers) or ["s00001"]
        rows = []
        for _ in range(n):
            event = rng.choice(EVENTS)
            occurred = now - timedelta(days=rng.choice([0, 0, 1, 2, 5, 20, 40]), seconds=rng.randint(0, 86399))
            rows.append({
                "event_id": f"e{self.next_event:07d}",
                "subscriber_id": rng.choice(ids + ["s99999"]),  # an unknown subscriber too
                "event": event,
                "occurred_at": occurred,
                "amount": round(rng.uniform(1, 200), 2) if event == "purchase" else None,
                "product": rng.choice(PRODUCTS) if event == "purchase" else None,
                "delivered_at": (occurred + timedelta(days=rng.randint(0, 4)))
                if event == "purchase" and rng.random() < 0.8 else None,
            })
            self.next_event += 1
        return rows

    # ---- files ---------------------------------------------------------------------

    def land(self, data: Path, kind: str, rows: list[dict], at: datetime, *, fmt: str | None = None,
             name: str | None = None, body: bytes | None = None, accepted: bool = True,
             held: bool = False, quarantined: tuple[int, ...] = ()) -> LandedFile:
        fmt = fmt or self.rng.choice(FORMATS)
        if name is None:
            self.name_counter += 1
            name = f"{kind}_{self.name_counter:03d}_{stamp(at)}.{fmt}"
        if body is None:
            types = {"subscribers": SUBSCRIBER_TYPES, "events": EVENT_TYPES,
                     "suppressions": SUPPRESSION_TYPES}[kind]
            body = encode(rows, types, fmt, self.rng)
        folder = data / "landing" / kind
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(body)
        landed = LandedFile(kind, name, hashlib.sha256(body).hexdigest(), at, rows, accepted, held, quarantined)
        self.landed.append(landed)
        return landed

    def snapshot_rows(self) -> list[dict]:
        return [dict(row, tags=list(row["tags"]) if row["tags"] else None) for _, row in sorted(self.subscribers.items())]

    # ---- what is in force at a time ----------------------------------------------------

    def snapshot_in_force(self, as_of: datetime, published_held: set[str]) -> LandedFile | None:
        """The latest accepted snapshot at or before as_of (a held one only once forced)."""
        found = [f for f in self.landed if f.kind == "subscribers" and f.accepted and f.at <= as_of
                 and (not f.held or f.name in published_held)]
        return max(found, key=lambda f: f.at, default=None)

    def events_until(self, as_of: datetime) -> list[dict]:
        seen: dict[str, dict] = {}
        for f in self.landed:
            if f.kind == "events" and f.accepted:
                for row in f.rows:
                    seen.setdefault(row["event_id"], row)
        return list(seen.values())

    def suppressed_list(self) -> set[str]:
        return {norm_email(r["email"]) for f in self.landed if f.kind == "suppressions" and f.accepted
                for r in f.rows}


def _iso(ts: datetime, rng: random.Random) -> str:
    """A UTC timestamp in one of the spellings the contract allows."""
    spelling = rng.randrange(4)
    if spelling == 0:
        return ts.strftime("%Y-%m-%dT%H:%M:%SZ")
    if spelling == 1:
        return ts.strftime("%Y-%m-%d %H:%M:%S")
    if spelling == 2:
        return ts.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    shifted = ts + timedelta(hours=2)
    return shifted.strftime("%Y-%m-%dT%H:%M:%S+02:00")


def _text(value, kind: str, rng: random.Random) -> str:
    if value is None:
        return ""
    if kind == "list":
        return "|".join(value)
    if kind == "timestamp":
        return _iso(value, rng)
    if kind == "boolean":
        return rng.choice(["true", "TRUE", "True"]) if value else rng.choice(["false", "FALSE"])
    if kind == "date":
        return value.isoformat()
    return str(value)


def encode(rows: list[dict], types: dict[str, str], fmt: str, rng: random.Random) -> bytes:
    columns = list(types)
    if fmt in ("csv", "csv.gz"):
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_text(row.get(c), types[c], rng) for c in columns])
        body = out.getvalue().encode()
        return gzip.compress(body, mtime=0) if fmt == "csv.gz" else body
    if fmt == "jsonl":
        lines = []
        for row in rows:
            obj = {}
            for c in columns:
                value = row.get(c)
                if value is None and rng.random() < 0.5:
                    continue  # a missing key is missing, like null
                if isinstance(value, datetime):
                    value = _iso(value, rng)
                elif isinstance(value, date):
                    value = value.isoformat()
                obj[c] = value
            lines.append(json.dumps(obj))
        return ("\n".join(lines) + ("\n" if lines else "")).encode()
    if fmt == "parquet":
        arrays = {}
        for c in columns:
            values = [row.get(c) for row in rows]
            if types[c] == "timestamp":
                values = [None if v is None else v.replace(tzinfo=None) for v in values]
                arrays[c] = pa.array(values, pa.timestamp("us")).cast(ARROW["timestamp"])
            else:
                arrays[c] = pa.array(values, ARROW[types[c]])
        sink = io.BytesIO()
        pq.write_table(pa.table(arrays), sink)
        return sink.getvalue()
    raise ValueError(fmt)
