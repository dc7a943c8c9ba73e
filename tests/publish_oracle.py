"""Test oracle: the history relations after one run, computed from whole tables.

Production extends history from membership flags (pipelines/publish/flag_history.py);
this recomputes every stay, change and size with set differences in SQL, so
tests can check each published version against it (tests/test_flag_history.py).
The rules are those of pipelines/publish/flag_history.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.core import schemas
from pipelines.core.duck import scratch_connection
from pipelines.publish.relations import RELATIONS
from pipelines.publish.state import PublishedState, history_base
from pipelines.publish.versions import relation_path
from pipelines.segments.utc import naive_utc


@dataclass
class HistoryResult:
    """The full history relations after one run (not just the run's delta)."""

    history: pa.Table  # schemas.HISTORY, every stay ever
    changes: pa.Table  # schemas.CHANGES, every change of every run
    sizes: pa.Table  # schemas.SIZES, one row per segment per run
    run_id: str | None = None
    as_of: datetime | None = None
    # The version these tables extend, and the run they replace (same as_of).
    # Unknown (None) when the result was rebuilt from saved tables.
    base_version: str | None = None
    replaces_run_id: str | None = None

    def run_sizes(self, run_id: str | None = None) -> pa.Table:
        """One run's rows of `sizes` (this result's run by default)."""
        run_id = run_id or self.run_id
        if run_id is None:
            raise ValueError("run_id unknown: pass it")
        return self.sizes.filter(pc.equal(self.sizes.column("run_id"), run_id))


def read_relation(version_dir: Path | None, relation: str) -> pa.Table:
    """A full history relation of a version, as its warehouse view reads it; empty without a version."""
    schema = {"segment_membership_history": schemas.HISTORY, "membership_changes": schemas.CHANGES,
              "segment_sizes": schemas.SIZES}[relation]
    if version_dir is None:
        return schema.empty_table()
    query = next(r for r in RELATIONS if r.name == relation).query(version_dir)
    con = scratch_connection()
    try:
        return con.sql(query.sql(dialect="duckdb")).to_arrow_table().cast(schema)
    finally:
        con.close()


def _read_version(version_dir: Path | None, relation: str, schema: pa.Schema) -> pa.Table:
    if version_dir is None:
        return schema.empty_table()
    return schemas.conform(pq.read_table(relation_path(version_dir, relation)), schema, what=relation)


def normalized_membership(membership: pa.Table) -> pa.Table:
    """(segment, subscriber_id) pairs, distinct, sorted, without NULLs."""
    table = schemas.conform(membership, schemas.MEMBERSHIP, what="membership")
    con = scratch_connection()
    try:
        con.register("m", table)
        nulls = con.sql("SELECT count(*) FROM m WHERE segment IS NULL OR subscriber_id IS NULL").fetchall()[0][0]
        if nulls:
            raise ValueError(f"membership has {nulls} row(s) with a NULL segment or subscriber_id")
        result = con.sql("SELECT DISTINCT segment, subscriber_id FROM m ORDER BY segment, subscriber_id")
        return result.to_arrow_table().cast(schemas.MEMBERSHIP)
    finally:
        con.close()


def compute_history(
    previous: PublishedState | None,
    membership: pa.Table,
    run_id: str,
    as_of: datetime,
    *,
    segments: Iterable[str] | None = None,
) -> HistoryResult:
    """Extend the published history with this run's membership.

    `previous` is the currently published state (None before the first run).
    `segments` are the keys of the currently defined segments; without it, the
    segments present in `membership` are taken as current, which only differs
    for a defined segment with no members (it then gets no `segment_sizes` row).
    """
    as_of = naive_utc(as_of)
    base, replaces_run_id = history_base(previous, as_of)
    membership = normalized_membership(membership)
    present = set(membership.column("segment").to_pylist())
    current = set(segments) if segments is not None else set(present)
    unknown = sorted(present - current)
    if unknown:
        raise ValueError(f"membership has segment(s) that are not defined: {', '.join(unknown)}")

    base_dir = base.version_dir if base else None
    prev_history = read_relation(base_dir, "segment_membership_history")
    prev_changes = read_relation(base_dir, "membership_changes")
    prev_sizes = read_relation(base_dir, "segment_sizes")
    prev_segments = _read_version(base_dir, "segments", schemas.SEGMENTS).select(["segment"])

    con = scratch_connection()
    try:
        con.register("membership", membership)
        con.register("prev_history", prev_history)
        con.register("prev_changes", prev_changes)
        con.register("prev_sizes", prev_sizes)
        con.register("prev_segments", prev_segments)
        con.register("current_segments", pa.table({"segment": pa.array(sorted(current), pa.string())}))
        params = {"run_id": run_id, "as_of": as_of}
        # Set differences against the open stays: who entered and who left.
        con.execute("""
            CREATE TEMP TABLE open_stays AS
                SELECT segment, subscriber_id FROM prev_history WHERE valid_to IS NULL;
            CREATE TEMP TABLE entered AS
                SELECT segment, subscriber_id FROM membership EXCEPT SELECT segment, subscriber_id FROM open_stays;
            CREATE TEMP TABLE exited AS
                SELECT segment, subscriber_id FROM open_stays EXCEPT SELECT segment, subscriber_id FROM membership;
        """)
        history = con.sql("""
            SELECT h.segment, h.subscriber_id, h.valid_from,
                   CASE WHEN x.segment IS NULL THEN h.valid_to ELSE $as_of END AS valid_to,
                   h.entered_run_id,
                   CASE WHEN x.segment IS NULL THEN h.exited_run_id ELSE $run_id END AS exited_run_id
            FROM prev_history h
            LEFT JOIN exited x
              ON h.valid_to IS NULL AND x.segment = h.segment AND x.subscriber_id = h.subscriber_id
            UNION ALL
            SELECT segment, subscriber_id, $as_of, NULL, $run_id, NULL FROM entered
            ORDER BY segment, subscriber_id, valid_from
        """, params=params).to_arrow_table()
        changes = con.sql("""
            SELECT run_id, as_of, segment, subscriber_id, change FROM prev_changes
            UNION ALL SELECT $run_id, $as_of, segment, subscriber_id, 'entered' FROM entered
            UNION ALL SELECT $run_id, $as_of, segment, subscriber_id, 'exited' FROM exited
            ORDER BY as_of, segment, subscriber_id, change
        """, params=params).to_arrow_table()
        # One row per current segment, plus one for each segment that stopped
        # existing in this run (closing its stays), so sizes add up with changes.
        sizes = con.sql("""
            WITH run_segments AS (
                SELECT segment FROM current_segments
                UNION SELECT segment FROM prev_segments
                UNION SELECT segment FROM exited
            ),
            members AS (SELECT segment, count(*) AS n FROM membership GROUP BY segment),
            ins AS (SELECT segment, count(*) AS n FROM entered GROUP BY segment),
            outs AS (SELECT segment, count(*) AS n FROM exited GROUP BY segment)
            SELECT run_id, as_of, segment, members, entered, exited FROM prev_sizes
            UNION ALL
            SELECT $run_id, $as_of, s.segment,
                   coalesce(m.n, 0), coalesce(i.n, 0), coalesce(o.n, 0)
            FROM run_segments s
            LEFT JOIN members m USING (segment)
            LEFT JOIN ins i USING (segment)
            LEFT JOIN outs o USING (segment)
            ORDER BY as_of, segment
        """, params=params).to_arrow_table()
    finally:
        con.close()
    return HistoryResult(
        history=history.cast(schemas.HISTORY),
        changes=changes.cast(schemas.CHANGES),
        sizes=sizes.cast(schemas.SIZES),
        run_id=run_id,
        as_of=as_of,
        base_version=base.version if base else None,
        replaces_run_id=replaces_run_id,
    )
