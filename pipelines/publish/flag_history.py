"""Extend history from membership flags: what the run writes, at the cost of what changed.

The same rules as `history.compute_history` (see history.py), computed
another way: the run's flags (one bitmap per segment, rows sorted by
subscriber_id) are compared with the flags the base version kept
(history_files.FLAGS_FILE), segment by segment:

    entered = now AND NOT before        exited = before AND NOT now

Subscribers are matched by id: when both snapshots hold the same ids (the
common case) rows line up as they are; otherwise one DuckDB join maps rows of
one to rows of the other. Open stays keep their `valid_from` and
`entered_run_id`, read from the base version's `segment_membership.parquet`
(sorted like the flags, so a segment's stays are a slice of it).

Outputs, in `out_dir`: `segment_membership.parquet` (every open stay, sorted:
the relation the version publishes, written one segment at a time so memory
stays bounded) and this run's `changes`, `closed` and `sizes` rows, each a
small file (history_files.py appends them to the base version's files).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..clock import to_naive_utc
from ..engine.flags import ID, align_ids, flag_keys, member_counts
from ..segments.plan import segment_column
from . import schemas
from .history import history_base
from .history_files import OPEN_STAYS, OPEN_STAYS_DICTIONARY, open_stays, read_flags, write_table
from .state import PublishedState
from .versions import relation_path

OPEN_STAYS_FILE = "segment_membership.parquet"
# Rows buffered before a row group of segment_membership.parquet is written.
_ROW_GROUP = 1 << 20


@dataclass
class HistoryDelta:
    """What one run adds to the history of the version it builds on."""

    run_id: str
    as_of: datetime
    base_version: str | None
    replaces_run_id: str | None
    open_stays: Path  # segment_membership.parquet of the new version
    deltas: dict[str, Path]  # kind -> file with this run's rows (history_files.KINDS)
    sizes: pa.Table  # this run's segment_sizes rows
    members: int = 0
    entered: int = 0
    exited: int = 0
    extra: dict = field(default_factory=dict)

    def run_sizes(self, run_id: str | None = None) -> pa.Table:
        return self.sizes


def _us(moment: datetime) -> int:
    return int(np.datetime64(moment, "us").astype(np.int64))


def membership_to_flags(membership: pa.Table, ids: pa.Array | None = None,
                        keys: Iterable[str] | None = None) -> pa.Table:
    """Flags from the long shape, over `ids` (default: every member, sorted)."""
    membership = membership.select(["segment", "subscriber_id"]).cast(schemas.MEMBERSHIP)
    if ids is None:
        ids = pc.unique(membership.column("subscriber_id")).sort() if membership.num_rows else pa.array([], pa.string())
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    keys = sorted(set(keys) if keys is not None else set(membership.column("segment").to_pylist()))
    columns = {ID: ids}
    for key in keys:
        members = membership.filter(pc.equal(membership.column("segment"), key)).column("subscriber_id")
        columns[segment_column(key)] = pc.is_in(ids, value_set=members.combine_chunks()) if len(members) \
            else pa.array(np.zeros(len(ids), dtype=bool))
    return pa.table(columns)


def _bools(flags: pa.Table | None, key: str, n: int) -> np.ndarray:
    if flags is None or segment_column(key) not in flags.column_names:
        return np.zeros(n, dtype=bool)
    return flags.column(segment_column(key)).to_numpy()


def _gather(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """values[positions], False where a position is -1."""
    return values[positions] & (positions >= 0)


class _StaysWriter:
    """segment_membership.parquet, one buffered batch at a time."""

    def __init__(self, target: Path, run_ids: pa.Array):
        self.target = target
        self.run_ids = run_ids
        self.parts: list[tuple[str, pa.Array, np.ndarray, np.ndarray]] = []
        self.buffered = 0
        self.writer: pq.ParquetWriter | None = None

    def add(self, key: str, ids: pa.Array, valid_from: np.ndarray, run_codes: np.ndarray) -> None:
        if len(ids):
            self.parts.append((key, ids, valid_from, run_codes))
            self.buffered += len(ids)
        if self.buffered >= _ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        if not self.parts and self.writer is not None:
            return
        keys = sorted({p[0] for p in self.parts})
        index = {k: i for i, k in enumerate(keys)}
        counts = [len(p[1]) for p in self.parts]
        segment = pa.DictionaryArray.from_arrays(
            pa.array(np.repeat(np.array([index[p[0]] for p in self.parts], dtype=np.int32), counts), pa.int32()),
            pa.array(keys, pa.string()))
        valid_from = np.concatenate([p[2] for p in self.parts]) if self.parts else np.zeros(0, np.int64)
        codes = np.concatenate([p[3] for p in self.parts]) if self.parts else np.zeros(0, np.int32)
        table = pa.table({
            "segment": segment,
            "subscriber_id": pa.chunked_array([p[1] for p in self.parts], pa.string()),
            "valid_from": pa.array(valid_from, pa.int64()).cast(schemas.TS),
            "entered_run_id": pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), self.run_ids),
        })
        if self.writer is None:
            schema = pa.schema([
                ("segment", pa.dictionary(pa.int32(), pa.string())),
                ("subscriber_id", pa.string()),
                ("valid_from", schemas.TS),
                ("entered_run_id", pa.dictionary(pa.int32(), pa.string())),
            ])
            # Statistics on `segment` only: readers skip row groups by segment; min/max of
            # every subscriber_id page cost a third of the write and serve no query.
            self.writer = pq.ParquetWriter(self.target, schema, compression="zstd",
                                           use_dictionary=OPEN_STAYS_DICTIONARY, write_statistics=["segment"])
        self.writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self.parts, self.buffered = [], 0

    def close(self) -> None:
        self.flush()
        if self.writer is not None:
            self.writer.close()


def extend_history(
    previous: PublishedState | None,
    flags: pa.Table,
    run_id: str,
    as_of: datetime,
    *,
    segments: Iterable[str] | None = None,
    out_dir: Path,
) -> HistoryDelta:
    """This run's history rows and open stays, from its flags and the base version's."""
    as_of = to_naive_utc(as_of)
    base, replaces_run_id = history_base(previous, as_of)
    keys = flag_keys(flags)
    current = set(segments) if segments is not None else set(keys)
    unknown = sorted(set(keys) - current)
    if unknown:
        raise ValueError(f"membership has segment(s) that are not defined: {', '.join(unknown)}")
    out_dir.mkdir(parents=True, exist_ok=True)

    base_dir = base.version_dir if base else None
    prev_flags = read_flags(base_dir)
    if base_dir is not None and prev_flags is None:  # a version without flags: its members are enough
        prev_flags = membership_to_flags(open_stays(base_dir))
    prev_keys = flag_keys(prev_flags) if prev_flags is not None else []
    # Segments of the base version get a sizes row even without members (as in compute_history).
    if base_dir is not None:
        defined = pq.read_table(relation_path(base_dir, "segments"), columns=["segment"])
        prev_keys = sorted(set(prev_keys) | set(defined.column("segment").to_pylist()))

    cur_ids = flags.column(ID)
    n_cur = flags.num_rows
    prev_ids = prev_flags.column(ID) if prev_flags is not None else pa.chunked_array([], pa.string())
    n_prev = len(prev_ids)
    aligned = align_ids(prev_ids, cur_ids) if prev_flags is not None else None
    same = prev_flags is not None and aligned is None

    # Base open stays: valid_from (µs) and entered_run_id codes; a segment's stays
    # are one slice (the file is sorted like the flags' columns).
    prev_from, prev_codes, run_ids = _base_stays(base_dir)
    starts: dict[str, int] = {}
    if prev_flags is not None:
        first = 0
        for key, count in member_counts(prev_flags).items():
            starts[key] = first
            first += count
        if first != len(prev_from):
            raise ValueError(f"base version {base.version}: {len(prev_from):,} open stays, {first:,} members")
    if run_id not in run_ids:
        run_ids.append(run_id)
    new_code = run_ids.index(run_id)
    now = _us(as_of)

    writer = _StaysWriter(out_dir / OPEN_STAYS_FILE, pa.array(run_ids, pa.string()))
    position = np.zeros(n_prev, dtype=np.int64)  # prev row -> index among the segment's base stays
    changes: list[pa.Table] = []
    closed: list[pa.Table] = []
    size_rows: list[tuple[str, int, int, int]] = []
    for key in sorted(set(keys) | set(prev_keys)):
        now_in = _bools(flags, key, n_cur)
        before = _bools(prev_flags, key, n_prev)
        if same:
            before_in_cur, now_in_prev = before, now_in
        elif aligned is not None:
            cur_of_prev, prev_of_cur = aligned
            before_in_cur, now_in_prev = _gather(before, prev_of_cur), _gather(now_in, cur_of_prev)
        else:
            before_in_cur, now_in_prev = np.zeros(n_cur, dtype=bool), np.zeros(n_prev, dtype=bool)
        entered_rows = np.flatnonzero(now_in & ~before_in_cur)
        exited_rows = np.flatnonzero(before & ~now_in_prev)
        members_rows = np.flatnonzero(now_in)

        base_rows = np.flatnonzero(before)
        first = starts.get(key, 0)
        if len(base_rows):
            if first + len(base_rows) > len(prev_from):
                raise ValueError(f"base version's open stays of '{key}' do not match its flags")
            position[base_rows] = np.arange(first, first + len(base_rows))
        if key in current and key in keys:
            valid_from = np.full(len(members_rows), now, dtype=np.int64)
            codes = np.full(len(members_rows), new_code, dtype=np.int32)
            stayed = before_in_cur[members_rows]
            if stayed.any():
                rows_before = members_rows[stayed] if same else aligned[1][members_rows[stayed]]
                valid_from[stayed] = prev_from[position[rows_before]]
                codes[stayed] = prev_codes[position[rows_before]]
            writer.add(key, cur_ids.take(pa.array(members_rows)).combine_chunks() if len(members_rows)
                       else pa.array([], pa.string()), valid_from, codes)
        entered_ids = cur_ids.take(pa.array(entered_rows)) if len(entered_rows) else pa.array([], pa.string())
        exited_ids = prev_ids.take(pa.array(exited_rows)) if len(exited_rows) else pa.array([], pa.string())
        if len(entered_rows) or len(exited_rows):
            changes.append(pa.table({
                "segment": _strings([key], np.zeros(len(entered_rows) + len(exited_rows), np.int32)),
                "subscriber_id": pa.chunked_array([_one(entered_ids), _one(exited_ids)]),
                "change": _strings(["entered", "exited"], np.repeat(np.array([0, 1], np.int32),
                                                                    [len(entered_rows), len(exited_rows)])),
            }))
        if len(exited_rows):
            at = position[exited_rows]
            closed.append(pa.table({
                "segment": _strings([key], np.zeros(len(exited_rows), np.int32)),
                "subscriber_id": _one(exited_ids),
                "valid_from": pa.array(prev_from[at], pa.int64()).cast(schemas.TS),
                "valid_to": pa.array(np.full(len(exited_rows), now, dtype=np.int64), pa.int64()).cast(schemas.TS),
                "entered_run_id": _strings(run_ids, prev_codes[at]),
                "exited_run_id": _strings([run_id], np.zeros(len(exited_rows), np.int32)),
            }))
        if key in current or key in prev_keys:
            size_rows.append((key, len(members_rows) if key in keys else 0, len(entered_rows), len(exited_rows)))
    writer.close()

    change_table = _sorted(_concat(changes, ["segment", "subscriber_id", "change"]),
                           ["segment", "subscriber_id", "change"])
    change_table = pa.table({
        "run_id": _strings([run_id], np.zeros(change_table.num_rows, np.int32)),
        "as_of": pa.array(np.full(change_table.num_rows, now, dtype=np.int64), pa.int64()).cast(schemas.TS),
        "segment": change_table.column("segment"),
        "subscriber_id": change_table.column("subscriber_id"),
        "change": change_table.column("change"),
    })
    closed_table = _sorted(pa.concat_tables(closed) if closed else schemas.HISTORY.empty_table(),
                           ["segment", "subscriber_id"])
    sizes = pa.table({
        "run_id": pa.array([run_id] * len(size_rows), pa.string()),
        "as_of": pa.array([as_of] * len(size_rows), schemas.TS),
        "segment": pa.array([r[0] for r in size_rows], pa.string()),
        "members": pa.array([r[1] for r in size_rows], pa.int64()),
        "entered": pa.array([r[2] for r in size_rows], pa.int64()),
        "exited": pa.array([r[3] for r in size_rows], pa.int64()),
    }, schema=schemas.SIZES)
    deltas = {}
    for kind, table in (("changes", change_table), ("closed", closed_table), ("sizes", sizes)):
        deltas[kind] = out_dir / f"delta_{kind}.parquet"
        write_table(schemas.conform(table, {"changes": schemas.CHANGES, "closed": schemas.HISTORY,
                                            "sizes": schemas.SIZES}[kind], what=kind), deltas[kind])
    return HistoryDelta(
        run_id=run_id, as_of=as_of, base_version=base.version if base else None, replaces_run_id=replaces_run_id,
        open_stays=out_dir / OPEN_STAYS_FILE, deltas=deltas, sizes=sizes,
        members=sum(r[1] for r in size_rows), entered=sum(r[2] for r in size_rows),
        exited=sum(r[3] for r in size_rows),
    )


def _base_stays(base_dir: Path | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """valid_from (µs), entered_run_id codes and the run ids they index, of every
    open stay of the base version, in file order. Reads two columns, not the ids."""
    if base_dir is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int32), []
    target = relation_path(base_dir, "segment_membership")
    if "valid_from" not in pq.read_schema(target).names:  # the one-file-per-relation layout
        stays = open_stays(base_dir)
    else:
        stays = pq.read_table(target, columns=["valid_from", "entered_run_id"], read_dictionary=["entered_run_id"])
    valid_from = pc.cast(stays.column("valid_from"), pa.int64()).to_numpy()
    runs = stays.column("entered_run_id")
    runs = runs.unify_dictionaries() if pa.types.is_dictionary(runs.type) else pc.dictionary_encode(runs)
    runs = runs.combine_chunks() if runs.num_chunks else pa.DictionaryArray.from_arrays(
        pa.array([], pa.int32()), pa.array([], pa.string()))
    return valid_from, runs.indices.to_numpy().astype(np.int32), runs.dictionary.to_pylist()


def _strings(values: list[str], codes: np.ndarray) -> pa.Array:
    """values[codes] as a plain string array (built through a dictionary: no Python loop)."""
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(values, pa.string())).cast(
        pa.string())


def _one(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def _concat(tables: list[pa.Table], names: list[str]) -> pa.Table:
    if not tables:
        return pa.table({n: pa.array([], pa.string()) for n in names})
    return pa.concat_tables(tables)


def _sorted(table: pa.Table, keys: list[str]) -> pa.Table:
    if table.num_rows < 2:
        return table
    return table.sort_by([(k, "ascending") for k in keys])


__all__ = ["OPEN_STAYS", "HistoryDelta", "extend_history", "membership_to_flags"]
