"""A later snapshot of the sample data with a share of subscribers changed, plus a
small events export: the input of an hourly incremental run."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipelines.core.settings import Paths
from pipelines.sample_data.generate import (
    EVENT_SCHEMA,
    SUBSCRIBER_SCHEMA,
    _blocks,
    _event_block,
    _subscriber_block,
    _with_event_ids,
    as_of_seconds,
)
from pipelines.sample_data.landing import _landing_writer, landing_file_paths

_CHANGE_STREAM = 2
# Columns a change may touch (ids, emails and creation times stay).
_CHANGEABLE = ("status", "first_name", "last_name", "signup_form", "city", "state", "postal_code", "age", "tags",
               "loyalty_points", "vip", "birthday")


def _changed_block(block: pa.Table, rng: np.random.Generator, share: float) -> tuple[pa.Table, np.ndarray]:
    """(block with about `share` of its rows changed in one column and ~share/10 dropped, changed rows)."""
    k = block.num_rows
    changed = rng.random(k) < share
    which = rng.integers(0, len(_CHANGEABLE), k)
    source = rng.integers(0, max(k, 1), k)
    columns = {name: block.column(name) for name in block.column_names}
    for i, name in enumerate(_CHANGEABLE):
        rows = changed & (which == i)
        if rows.any():
            columns[name] = columns[name].take(np.where(rows, source, np.arange(k)))
    keep = rng.random(k) >= share / 10
    return pa.table(columns, schema=block.schema).filter(keep), changed[keep]


def write_changed_landing(paths: Paths, *, as_of: datetime, changed_as_of: datetime, since: datetime,
                          n_subscribers: int, share: float = 0.01, seed: int = 7, variant: int = 0) -> list[Path]:
    """Landing files at `changed_as_of`: the base snapshot of `write_landing` (same n, as_of
    and seed) regenerated block by block, about `share` of its rows changed in one column,
    a few dropped and a few added; and new events for about `share` of the subscribers,
    dated between `since` and `changed_as_of`. `variant` picks another set of changes."""
    now = as_of_seconds(as_of)
    first, last = as_of_seconds(since), as_of_seconds(changed_as_of)
    subscribers_path, events_path = landing_file_paths(paths, as_of=changed_as_of, fmt="parquet")
    new_subscribers = max(1, int(n_subscribers * share / 10))
    next_event = 1
    with (_landing_writer(subscribers_path, SUBSCRIBER_SCHEMA, "parquet") as write_subscribers,
          _landing_writer(events_path, EVENT_SCHEMA, "parquet") as write_events):
        blocks = list(_blocks(n_subscribers))
        extra = (len(blocks), n_subscribers, n_subscribers + new_subscribers)  # numbered after everyone
        for block, start, stop in [*blocks, extra]:
            rows = _subscriber_block(block, start, stop, now=now, seed=seed)
            rng = np.random.default_rng([seed, _CHANGE_STREAM, variant, block])
            if start < n_subscribers:
                rows, touched = _changed_block(rows, rng, share)
            else:
                touched = np.ones(rows.num_rows, dtype=bool)
            write_subscribers(rows)
            # New events for the changed and new subscribers and about as many others.
            active = touched | (rng.random(rows.num_rows) < share)
            events = _event_block(rows.filter(pa.array(active)), now=now, seed=seed + 1, block=block,
                                  per_subscriber=2.0)
            if events.num_rows:
                at = rng.integers(first + 1, last + 1, events.num_rows) * 1_000_000
                events = events.set_column(events.schema.get_field_index("occurred_at"), "occurred_at",
                                           pa.array(at, pa.timestamp("us")))
                write_events(_with_event_ids(events, next_event, prefix=f"evt_{last}_"))
                next_event += events.num_rows
    return [subscribers_path, events_path]
