"""Write sample data as landing files in the contract's format (data-contract.md,
"Landing files"): one subscriber snapshot and one events export, stamped `as_of`,
streamed block by block. The same arguments give the same bytes."""

from __future__ import annotations

import contextlib
import filecmp
import gzip
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from pipelines.core.settings import Paths
from pipelines.lake.naming import FORMATS
from pipelines.sample_data.generate import (
    EVENT_SCHEMA,
    SUBSCRIBER_SCHEMA,
    _blocks,
    _event_block,
    _ordered_map,
    _subscriber_block,
    _with_event_ids,
    as_of_seconds,
)

# Parquet dictionary-encodes only columns with few distinct values: trying it on
# ids and timestamps costs a third of the write time for nothing.
_DICTIONARY_COLUMNS = frozenset({"status", "first_name", "last_name", "signup_form", "city", "state", "country",
                                 "postal_code", "age", "tags", "vip", "event", "product", "campaign", "coupon"})
# RFC 4180: header row, comma, "..." with doubled quotes (pyarrow quotes every string value).
_CSV_OPTIONS = pa_csv.WriteOptions(include_header=True, quoting_style="needed")


def landing_file_paths(paths: Paths, *, as_of: datetime, fmt: str = "csv") -> tuple[Path, Path]:
    """(subscriber snapshot, events export) that `write_landing` writes, stamped with `as_of`."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    stamp = datetime.fromtimestamp(as_of_seconds(as_of), UTC).strftime("%Y%m%dT%H%M%SZ")
    return (paths.landing_subscribers / f"subscribers_{stamp}.{fmt}",
            paths.landing_events / f"events_{stamp}.{fmt}")


def write_landing(paths: Paths, *, as_of: datetime, n_subscribers: int = 10_000, seed: int = 7,
                  fmt: str = "csv", per_subscriber: float = 2.0) -> list[Path]:
    """Write one subscriber snapshot and one events export; returns their paths."""
    if n_subscribers < 0:
        raise ValueError(f"n_subscribers must be >= 0, got {n_subscribers}")
    subscribers_path, events_path = landing_file_paths(paths, as_of=as_of, fmt=fmt)
    now = as_of_seconds(as_of)

    def make(rows: tuple[int, int, int]) -> tuple[pa.Table, pa.Table]:
        # On the worker threads: text formatting runs in parallel too.
        subscribers = _subscriber_block(*rows, now=now, seed=seed)
        events = _event_block(subscribers, now=now, seed=seed, block=rows[0], per_subscriber=per_subscriber)
        if fmt == "parquet":
            return subscribers, events
        return render_for(subscribers, fmt), render_for(events, fmt)

    next_event = 1
    with (_landing_writer(subscribers_path, SUBSCRIBER_SCHEMA, fmt) as write_subscribers,
          _landing_writer(events_path, EVENT_SCHEMA, fmt) as write_events):
        for subscribers, events in _ordered_map(make, _blocks(n_subscribers)):
            write_subscribers(subscribers)
            write_events(_with_event_ids(events, next_event))
            next_event += events.num_rows
    return [subscribers_path, events_path]


def render_for(table: pa.Table, fmt: str) -> pa.Table:
    """The columns as a text format carries them: ISO 8601 `...Z` timestamps; CSV
    also gets `|`-joined tags. (Parquet keeps the Arrow types.)"""
    columns = []
    for column, field in zip(table.columns, table.schema, strict=True):
        if pa.types.is_timestamp(field.type):
            column = iso_utc(column)
        elif pa.types.is_list(field.type) and fmt != "jsonl":
            joined = pc.binary_join(column, "|")
            # An empty list is an empty cell (missing == empty list), not `""`.
            column = pc.if_else(pc.equal(pc.list_value_length(column), 0), None, joined)
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)


def iso_utc(column: pa.ChunkedArray) -> pa.Array:
    """Timestamps as `YYYY-MM-DDTHH:MM:SSZ` (whole seconds, years 1000..9999), null stays null.
    pyarrow's `strftime` costs seconds per million values: numpy edits its cast's fixed-width text."""
    column = column.combine_chunks()
    seconds = pc.cast(column, pa.timestamp("s"), safe=False)
    text = pc.cast(seconds.fill_null(pa.scalar(0, seconds.type)), pa.string())
    n = len(text)
    iso = np.empty((n, 20), dtype=np.uint8)
    iso[:, :19] = np.frombuffer(text.buffers()[2], dtype=np.uint8, count=19 * n).reshape(n, 19)
    iso[:, 10], iso[:, 19] = ord("T"), ord("Z")
    # int32 offsets: one block's rows at a time, far below 2 GiB of text.
    offsets = np.arange(0, 20 * n + 1, 20, dtype=np.int32)
    text = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(iso))
    return pc.if_else(column.is_valid(), text, None) if column.null_count else text


@contextlib.contextmanager
def _landing_writer(path: Path, schema: pa.Schema, fmt: str) -> Iterator:
    """Yield `write(table)` taking tables already `render_for`-ed; on success the
    file appears at `path` in one rename, so an ingest never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Beside the landing folder, not in it: ingest must never pick up a partial file.
    partial = path.parent.parent / f".{path.name}.partial"
    try:
        if fmt == "parquet":
            dictionary = [name for name in schema.names if name in _DICTIONARY_COLUMNS]
            with pq.ParquetWriter(partial, schema, compression="zstd", use_dictionary=dictionary) as writer:
                yield writer.write_table
        elif fmt == "jsonl":
            with open(partial, "wb") as sink:
                yield lambda table: cast(pl.DataFrame, pl.from_arrow(table)).write_ndjson(sink)
        else:
            text_schema = render_for(schema.empty_table(), fmt).schema
            # Python's gzip: level 6 is ~3x faster than Arrow's level 9; mtime=0 and no
            # file name in the header keep the bytes reproducible.
            with pa.OSFile(str(partial), "wb") as raw, \
                    (gzip.GzipFile(filename="", mode="wb", compresslevel=6, fileobj=raw, mtime=0)
                     if fmt == "csv.gz" else contextlib.nullcontext(raw)) as out, \
                    pa_csv.CSVWriter(out, text_schema, write_options=_CSV_OPTIONS) as writer:
                yield writer.write_table
        # An identical file stays untouched (same mtime too): re-running the demo changes nothing.
        if not (path.is_file() and filecmp.cmp(partial, path, shallow=False)):
            os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
