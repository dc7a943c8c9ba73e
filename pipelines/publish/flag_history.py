"""Membership history: stays, changes and sizes, extended by one run.

A *stay* is one uninterrupted membership of a subscriber in a segment:
`valid_from` is the `as_of` of the run that first saw it, `valid_to` the
`as_of` of the first run that no longer did (NULL while it lasts). The first
run opens a stay for everyone present; leaving closes it, coming back opens a
new one. A segment no longer defined has its open stays closed (its members
"exit") at the first run without it, which still gives it one `segment_sizes`
row (members 0), so sizes and changes add up. A run at the published run's
`as_of` replaces it (state.history_base): no row of the replaced run survives.

A run pays for what changed, not for the history so far (tests/publish_oracle.py
computes the same from whole tables): per segment, its flags (rows sorted by
subscriber_id) are compared with those the base version kept (FLAGS_FILE),

    entered = now AND NOT before        exited = before AND NOT now

matching subscribers by id. Open stays keep the `valid_from` and `entered_run_id`
of the base version's STAYS_FILE (sorted like the flags: a segment's are one
slice) and are written a segment at a time (membership_files.py); the run's
changes, closed stays and sizes are small files appended to the base version's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..core import schemas
from ..core.flags import (
    ID,
    align_ids,
    bitmap,
    bools,
    flag_keys,
    member_counts,
    move_positions,
    moved,
    one_array,
    take_rows,
)
from ..segments.plan import segment_column
from ..segments.utc import naive_utc
from .history_files import KIND_SCHEMAS, read_flags
from .membership_files import PartsWriter
from .state import PublishedState, history_base
from .versions import relation_path

OPEN_STAYS_FILE = "segment_membership.parquet"
# Beside it in a version: each open stay as the code of the run that opened it.
STAYS_FILE = "membership_stays.arrow"
# Rows buffered before a row group of segment_membership.parquet is written.
_ROW_GROUP = 1 << 20
# As written: the segment and run columns as dictionaries.
OPEN_STAYS_FILE_SCHEMA = pa.schema([
    ("segment", pa.dictionary(pa.int32(), pa.string())),
    ("subscriber_id", pa.string()),
    ("valid_from", schemas.TS),
    ("entered_run_id", pa.dictionary(pa.int32(), pa.string())),
])
# Statistics on `segment` only: readers skip row groups by segment; min/max of
# every subscriber_id page cost a third of the write and serve no query.
# Few distinct values in the others: dictionary-encoded (and run-length encoded).
OPEN_STAYS_WRITE_OPTIONS: dict[str, Any] = {"compression": "zstd", "use_dictionary": ["segment", "valid_from", "entered_run_id"],
                            "write_statistics": ["segment"]}


@dataclass
class HistoryDelta:
    """What one run adds to the history of the version it builds on."""

    run_id: str
    as_of: datetime
    base_version: str | None
    open_stays: Path  # segment_membership.parquet of the new version
    stays: Path  # its STAYS_FILE
    deltas: dict[str, Path]  # kind -> file with this run's rows (history_files.KIND_SCHEMAS)
    sizes: pa.Table  # this run's segment_sizes rows
    entered: int
    exited: int


class _RowsWriter:
    """One Parquet file of `schema`, written a row group at a time as tables arrive."""

    def __init__(self, target: Path, schema: pa.Schema):
        self.schema = schema
        self.name = target.name
        self.parts: list[pa.Table] = []
        self.buffered = 0
        self.writer = pq.ParquetWriter(target, schema, compression="zstd")

    def add(self, table: pa.Table) -> None:
        if table.num_rows:
            self.parts.append(schemas.conform(table, self.schema, what=self.name))
            self.buffered += table.num_rows
        if self.buffered >= _ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            self.writer.write_table(pa.concat_tables(self.parts).combine_chunks())
        self.parts, self.buffered = [], 0

    def close(self) -> None:
        self.flush()
        self.writer.close()


class _StaysWriter:
    """segment_membership.parquet and its STAYS_FILE, one buffered batch at a time; an
    open stay is stored as a code into `runs` ((run_id, as_of µs) of the run that opened it)."""

    def __init__(self, target: Path, stays: Path, runs: list[tuple[str, int]]):
        self.target = target
        self.run_ids = pa.array([r[0] for r in runs], pa.string())
        self.run_from = np.array([r[1] for r in runs], dtype=np.int64)
        self.parts: list[tuple[str, pa.Array, np.ndarray]] = []
        self.buffered = 0
        self.files: PartsWriter | None = None
        schema = pa.schema([("run", pa.int32())], metadata={b"runs": json.dumps(runs).encode()})
        self.stays = pa.ipc.new_file(str(stays), schema, options=pa.ipc.IpcWriteOptions(compression="lz4"))
        self.stays_schema = schema

    def add(self, key: str, ids: pa.Array, run_codes: np.ndarray) -> None:
        ids = one_array(ids)  # plain arrays: pa.chunked_array() of ChunkedArrays walks them value by value
        # A large segment goes in row-group slices: memory stays bounded by a row group.
        for start in range(0, len(ids), _ROW_GROUP):
            part = ids.slice(start, _ROW_GROUP)
            self.parts.append((key, part, run_codes[start:start + len(part)]))
            self.buffered += len(part)
            if self.buffered >= _ROW_GROUP:
                self.flush()

    def flush(self) -> None:
        if not self.parts and self.files is not None:
            return
        keys = sorted({p[0] for p in self.parts})
        index = {k: i for i, k in enumerate(keys)}
        counts = [len(p[1]) for p in self.parts]
        segment = pa.DictionaryArray.from_arrays(
            pa.array(np.repeat(np.array([index[p[0]] for p in self.parts], dtype=np.int32), counts), pa.int32()),
            pa.array(keys, pa.string()))
        codes = np.concatenate([p[2] for p in self.parts]) if self.parts else np.zeros(0, np.int32)
        valid_from = self.run_from[codes]  # `runs` holds at least this run
        self.stays.write_batch(pa.record_batch([pa.array(codes, pa.int32())], schema=self.stays_schema))
        table = pa.table({
            "segment": segment,
            "subscriber_id": pa.chunked_array([p[1] for p in self.parts], pa.string()),
            "valid_from": pa.array(valid_from, pa.int64()).cast(schemas.TS),
            "entered_run_id": pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), self.run_ids),
        })
        if self.files is None:
            self.files = PartsWriter(self.target, OPEN_STAYS_FILE_SCHEMA, **OPEN_STAYS_WRITE_OPTIONS)
        # Row groups are encoded on other threads while this one builds the next.
        self.files.write(table)
        self.parts, self.buffered = [], 0

    def close(self) -> None:
        try:
            self.flush()
        finally:  # the files and their threads are closed even when the last row group fails
            if self.files is not None:
                self.files.close()
            self.stays.close()


def extend_history(previous: PublishedState | None, flags: pa.Table, run_id: str, as_of: datetime, *,
                   segments: Iterable[str], out_dir: Path) -> HistoryDelta:
    """This run's history rows and open stays, from its flags and the base version's;
    `segments`: the keys the project defines."""
    as_of = naive_utc(as_of)
    base, _ = history_base(previous, as_of)
    keys = flag_keys(flags)
    current = set(segments)
    unknown = sorted(set(keys) - current)
    if unknown:
        raise ValueError(f"membership has segment(s) that are not defined: {', '.join(unknown)}")
    out_dir.mkdir(parents=True, exist_ok=True)

    base_dir = base.version_dir if base else None
    prev_flags = read_flags(base_dir)
    if base is not None and prev_flags is None:
        raise ValueError(f"base version {base.version} has no membership flags")
    prev_keys = flag_keys(prev_flags) if prev_flags is not None else []
    # Segments of the base version get a sizes row even without members.
    if base_dir is not None:
        defined = pq.read_table(relation_path(base_dir, "segments"), columns=["segment"])
        prev_keys = sorted(set(prev_keys) | set(defined.column("segment").to_pylist()))

    flags = flags.combine_chunks()  # one chunk: bitmap filters run in one pass
    if prev_flags is not None:
        prev_flags = prev_flags.combine_chunks()
    cur_ids = flags.column(ID)
    prev_ids = prev_flags.column(ID) if prev_flags is not None else pa.chunked_array([], pa.string())
    aligned = align_ids(prev_ids, cur_ids) if prev_flags is not None else None
    if aligned is not None:  # row positions to move a base column onto the current rows
        gather_prev = move_positions(aligned[1])
        gone = np.flatnonzero(aligned[0] < 0)  # base rows of subscribers no longer in the snapshot

    prev_codes, runs = _base_stays(base_dir)
    counts = member_counts(prev_flags) if prev_flags is not None else {}  # flags of the base version
    starts = dict(zip(counts, np.cumsum([0, *counts.values()]).tolist(), strict=False))
    if base is not None and (members := sum(counts.values())) != len(prev_codes):
        raise ValueError(f"base version {base.version}: {len(prev_codes):,} open stays, {members:,} members")
    now = int(np.datetime64(as_of, "us").astype(np.int64))
    if (run_id, now) not in runs:
        runs.append((run_id, now))
    new_code = runs.index((run_id, now))
    run_ids = [r[0] for r in runs]
    run_from = np.array([r[1] for r in runs], dtype=np.int64)
    nobody = pa.chunked_array([pa.array(np.zeros(flags.num_rows, dtype=bool))])

    writer = _StaysWriter(out_dir / OPEN_STAYS_FILE, out_dir / STAYS_FILE, runs)
    # Written segment by segment in key order, each segment's rows sorted by id: the
    # files come out sorted without a sort of the whole (at a first run, all of it).
    deltas = {kind: out_dir / f"delta_{kind}.parquet" for kind in KIND_SCHEMAS}
    changes, closed = (_RowsWriter(deltas[kind], KIND_SCHEMAS[kind]) for kind in ("changes", "closed"))
    size_rows: list[tuple[str, int, int, int]] = []
    with _closing_on_error(writer, changes, closed):
        for key in sorted(set(keys) | set(prev_keys)):
            # Bitmap operations only. When subscribers came or went, the base column first
            # moves onto the current rows and those who left are added as exits.
            before, base_codes, left = nobody, prev_codes[:0], None
            if prev_flags is not None and segment_column(key) in prev_flags.column_names:
                before, base_codes = prev_flags.column(segment_column(key)), prev_codes[starts.get(key, 0):]
                if aligned is not None:
                    before, base_codes, left = _onto_current_rows(before, base_codes, gather_prev, gone, prev_ids)
            now_in = flags.column(segment_column(key)) if key in keys else nobody
            record = _same_rows(key, now_in, before, cur_ids, base_codes, new_code)
            if left is not None:
                _add_exits(record, *left)
            if key in current:
                writer.add(key, record["members_ids"], record["codes"])
            if record["entered"] or record["exited"]:
                _add_changes(changes, key, record["entered_ids"], record["exited_ids"], run_id, now)
            if record["exited"]:
                _add_closed(closed, key, record["exited_ids"], record["exited_codes"], run_ids, run_from, now,
                            run_id)
            size_rows.append((key, record["members"], record["entered"], record["exited"]))
        writer.close()
        changes.close()
        closed.close()
    sizes = pa.Table.from_pylist([{"run_id": run_id, "as_of": as_of, "segment": key, "members": members,
                                   "entered": entered, "exited": exited}
                                  for key, members, entered, exited in size_rows], schema=schemas.SIZES)
    pq.write_table(sizes, deltas["sizes"], compression="zstd")
    return HistoryDelta(
        run_id=run_id, as_of=as_of, base_version=base.version if base else None,
        open_stays=out_dir / OPEN_STAYS_FILE, stays=out_dir / STAYS_FILE, deltas=deltas, sizes=sizes,
        entered=sum(r[2] for r in size_rows), exited=sum(r[3] for r in size_rows),
    )


@contextmanager
def _closing_on_error(*writers):
    """On an error, close the writers' files and threads (the workspace is discarded anyway)."""
    try:
        yield
    except BaseException:
        for w in writers:
            with suppress(Exception):
                w.close()
        raise


def _same_rows(key: str, now: pa.Array, before: pa.Array, ids: pa.Array, base_codes: np.ndarray,
               new_code: int) -> dict:
    """One segment's open stays and changes when rows line up (same subscribers)."""
    entered, exited = pc.and_not(now, before), pc.and_not(before, now)
    members, base_members, n_entered, n_exited = (int(pc.sum(bits).as_py() or 0)
                                                  for bits in (now, before, entered, exited))
    base_codes = base_codes[:base_members]
    codes, exited_codes = base_codes, base_codes[:0]  # nobody came or went: every stay goes on as it was
    if n_entered or n_exited:
        # Row numbers, not boolean filters: filtering one bitmap by another costs
        # 40 ms per 10M rows, these few index operations a quarter of it.
        base_rows = np.flatnonzero(bools(before))
        exited_at = np.searchsorted(base_rows, np.flatnonzero(bools(exited)))  # among the base members
        kept = np.ones(base_members, dtype=bool)
        kept[exited_at] = False
        entered_rows = np.flatnonzero(bools(entered))
        codes = np.insert(base_codes[kept], np.searchsorted(base_rows[kept], entered_rows), np.int32(new_code))
        exited_codes = base_codes[exited_at]
    empty = pa.array([], pa.string())
    return {
        "members": members, "entered": n_entered, "exited": n_exited, "codes": codes,
        "members_ids": one_array(ids.filter(now)) if members else empty,
        "entered_ids": one_array(ids.filter(entered)) if n_entered else empty,
        "exited_ids": one_array(ids.filter(exited)) if n_exited else empty,
        "exited_codes": exited_codes,
    }


def _onto_current_rows(before: pa.ChunkedArray, base_codes: np.ndarray, gather_prev: tuple[np.ndarray, np.ndarray],
                       gone: np.ndarray, prev_ids: pa.ChunkedArray):
    """A base flag column moved onto the current rows, the base stays' codes without
    those of members who left the snapshot, and those members (ids, codes) or None."""
    base_values = bools(before)
    base_codes = base_codes[:int(np.count_nonzero(base_values))]
    left_rows = gone[base_values[gone]]
    left = None
    if len(left_rows):
        rank = np.searchsorted(np.flatnonzero(base_values), left_rows)  # among the base members
        kept = np.ones(len(base_codes), dtype=bool)
        kept[rank] = False
        left = (take_rows(prev_ids, left_rows), base_codes[rank])
        base_codes = base_codes[kept]
    return bitmap(moved(base_values, gather_prev)), base_codes, left


def _add_exits(record: dict, ids: pa.Array, codes: np.ndarray) -> None:
    """Exits of members who left the snapshot, merged into `_same_rows`' record (kept sorted by id)."""
    if record["exited"]:
        ids = pa.concat_arrays([record["exited_ids"], ids])
        codes = np.concatenate([record["exited_codes"], codes])
        order = pc.sort_indices(ids)
        ids, codes = ids.take(order), codes[order.to_numpy()]
    record["exited_ids"], record["exited_codes"], record["exited"] = ids, codes, len(ids)


def _add_changes(writer: _RowsWriter, key: str, entered: pa.Array, exited: pa.Array, run_id: str,
                 now: int) -> None:
    """A segment's membership_changes rows, a row group at a time when only one kind
    is present (a first run: everyone enters), so they never exist in memory as a whole."""
    empty = pa.array([], pa.string())
    if len(entered) and len(exited):
        writer.add(_change_rows(key, entered, exited, run_id, now))
        return
    ids, entering = (entered, True) if len(entered) else (exited, False)
    for start in range(0, len(ids), _ROW_GROUP):
        part = ids.slice(start, _ROW_GROUP)
        writer.add(_change_rows(key, part if entering else empty, empty if entering else part, run_id, now))


def _add_closed(writer: _RowsWriter, key: str, ids: pa.Array, codes: np.ndarray, run_ids: list[str],
                run_from: np.ndarray, now: int, run_id: str) -> None:
    """A segment's segment_membership_history rows of the stays that end in this run,
    a row group at a time."""
    for start in range(0, len(ids), _ROW_GROUP):
        part = one_array(ids.slice(start, _ROW_GROUP))
        n, part_codes = len(part), codes[start:start + len(part)]
        writer.add(pa.table({
            "segment": _strings([key], np.zeros(n, np.int32)),
            "subscriber_id": part,
            "valid_from": pa.array(run_from[part_codes], pa.int64()).cast(schemas.TS),
            "valid_to": pa.array(np.full(n, now, dtype=np.int64), pa.int64()).cast(schemas.TS),
            "entered_run_id": _strings(run_ids, part_codes),
            "exited_run_id": _strings([run_id], np.zeros(n, np.int32)),
        }))


def _change_rows(key: str, entered: pa.Array, exited: pa.Array, run_id: str, now: int) -> pa.Table:
    """membership_changes rows of one segment, sorted by subscriber_id (both id lists are)."""
    n = len(entered) + len(exited)
    table = pa.table({
        "run_id": _strings([run_id], np.zeros(n, np.int32)),
        "as_of": pa.array(np.full(n, now, dtype=np.int64), pa.int64()).cast(schemas.TS),
        "segment": _strings([key], np.zeros(n, np.int32)),
        "subscriber_id": pa.chunked_array([one_array(entered), one_array(exited)], pa.string()),
        "change": _strings(["entered", "exited"], np.repeat(np.array([0, 1], np.int32), [len(entered), len(exited)])),
    })
    # Nobody both enters and leaves a segment in one run: a merge of two sorted lists.
    return table.sort_by("subscriber_id") if len(entered) and len(exited) else table


def _base_stays(base_dir: Path | None) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """Every open stay of the base version, in file order, as a code into the list
    of (run_id, valid_from µs) of the runs that opened them (STAYS_FILE)."""
    if base_dir is None:
        return np.zeros(0, np.int32), []
    with pa.memory_map(str(Path(base_dir) / STAYS_FILE)) as source:
        reader = pa.ipc.open_file(source)
        runs = [tuple(r) for r in json.loads(reader.schema.metadata[b"runs"])]
        table = reader.read_all()
    codes = table.column("run").to_numpy() if table.num_rows else np.zeros(0, np.int32)
    return codes.astype(np.int32, copy=False), runs


def _strings(values: list[str], codes: np.ndarray) -> pa.Array:
    """values[codes] as a plain string array (built through a dictionary: no Python loop)."""
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(values, pa.string())).cast(
        pa.string())
