"""The analyst warehouse's relations, in one registry (the README's table; a test
holds them together), from which catalog.py creates the views.

Paths enter the SQL only as sqlglot literals (duck.parquet_scan), and as ABSOLUTE
paths: DuckDB resolves relative ones against the reader's working directory.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import sqlglot
from sqlglot import exp

from ..core import schemas
from ..core.duck import parquet_scan
from ..core.schemas import FIXED_COLUMNS
from .history_files import HISTORY_DIR, read_manifest
from .membership_files import membership_files
from .versions import relation_path

EVENT_FILES = "event_files.json"
EMPTY_EVENTS = "events_empty.parquet"


def data_root(version_dir: Path) -> Path:
    return version_dir.absolute().parents[2]  # DATA/published/versions/<version>


@dataclass(frozen=True)
class Relation:
    name: str
    columns: tuple[str, ...]  # always there (the contract's among them)
    holds: str  # as the README's table says
    source: Callable[[Path], exp.Expr] | None = None  # FROM; None: `<name>.parquet`
    more_columns: bool = False  # every column of the files comes through (declared fields)
    counted: bool = True  # publishing counts its rows (from Parquet metadata) to prove the files read

    def query(self, version_dir: Path) -> exp.Select:
        """The view's query over `version_dir`."""
        version_dir = Path(version_dir).absolute()
        source = self.source(version_dir) if self.source else parquet_scan([relation_path(version_dir, self.name)])
        return exp.select(*(("*",) if self.more_columns else self.columns)).from_(source)


def _history(kind: str, version_dir: Path) -> exp.Expr:
    """Every file of one kind in the version's history manifest (history_files.py)."""
    manifest = read_manifest(version_dir)
    if manifest is None:
        raise ValueError(f"{version_dir} has no history manifest")
    return parquet_scan(version_dir / HISTORY_DIR / name for name in manifest[kind])


def _membership(version_dir: Path) -> exp.Expr:
    return parquet_scan(membership_files(relation_path(version_dir, "segment_membership")))


def _stays(version_dir: Path) -> exp.Expr:
    """Closed stays from the history files, open ones from the membership files."""
    closed = exp.select(*schemas.HISTORY.names).from_(_history("closed", version_dir))
    null = {name: exp.alias_(exp.cast(exp.Null(), exp.DataType.build(kind)), name)
            for name, kind in (("valid_to", "TIMESTAMP"), ("exited_run_id", "VARCHAR"))}
    current = exp.select(*(null.get(name, name) for name in schemas.HISTORY.names)).from_(_membership(version_dir))
    return exp.union(closed, current, distinct=False).subquery("stays")


def _events(version_dir: Path) -> exp.Expr:
    # Resolved against the version's own data folder, where it is now (catalog.write_event_file_list).
    listing = json.loads((version_dir / EVENT_FILES).read_text(encoding="utf-8"))
    files = [str(data_root(version_dir) / name) for name in listing] or [str(version_dir / EMPTY_EVENTS)]
    return parquet_scan(files, union_by_name=True)


_OVERLAP = """
WITH sizes AS (SELECT segment, count(*) AS members FROM segment_membership GROUP BY segment),
pairs AS (
    SELECT a.segment AS segment_a, b.segment AS segment_b, count(*) AS shared_members
    FROM segment_membership a
    JOIN segment_membership b ON a.subscriber_id = b.subscriber_id AND a.segment <> b.segment
    GROUP BY a.segment, b.segment
)
SELECT p.segment_a, p.segment_b, p.shared_members, sa.members AS members_a, sb.members AS members_b,
       round(p.shared_members / sa.members, 4) AS share_of_a
FROM pairs p JOIN sizes sa ON sa.segment = p.segment_a JOIN sizes sb ON sb.segment = p.segment_b
"""


def _overlap(version_dir: Path) -> exp.Expr:
    return exp.Subquery(this=sqlglot.parse_one(_OVERLAP, dialect="duckdb"), alias=exp.TableAlias(
        this=exp.to_identifier("overlap")))


# In the order the catalog creates them (and the README lists them).
RELATIONS = (
    Relation("subscribers", ("subscriber_id", "email", "status"),
             "the latest evaluated snapshot, every standard and declared field (`tags` is `VARCHAR[]`, "
             "NULL for no tags)", more_columns=True),
    Relation("segments", tuple(schemas.SEGMENTS.names),
             "one row per current segment: name, description, `definition_sha256`, `members`, the compiled `sql`"),
    Relation("segment_membership", tuple(schemas.MEMBERSHIP.names), "`(segment, subscriber_id)` right now",
             _membership),
    Relation("segment_membership_history", tuple(schemas.HISTORY.names),
             "one row per stay: `valid_from`, `valid_to` (NULL while still a member)", _stays),
    Relation("membership_changes", tuple(schemas.CHANGES.names),
             "who `entered` / `exited` which segment in which run", partial(_history, "changes")),
    Relation("segment_sizes", tuple(schemas.SIZES.names), "members, entered, exited per segment per run",
             partial(_history, "sizes")),
    # Both (a, b) and (b, a), so filtering on segment_a lists all overlaps of one segment.
    Relation("segment_overlap",
             ("segment_a", "segment_b", "shared_members", "members_a", "members_b", "share_of_a"),
             "pairs of segments and how many members they share", _overlap, counted=False),
    Relation("runs", tuple(schemas.RUNS.names), "every run: `as_of`, snapshot, start/finish, status"),
    Relation("recipients", FIXED_COLUMNS,
             "current recipients of every audience: `group` (`send`/`holdout`) and the audience's fields",
             more_columns=True),
    Relation("suppressions", tuple(schemas.SUPPRESSIONS.names),
             "every suppressed address in force: `email`, `reason`, `source`, `suppressed_at`"),
    Relation("quarantine", tuple(schemas.QUARANTINE.names),
             "every quarantined row with file, row number, reason and raw text"),
    Relation("events", ("event_id", "subscriber_id", "event", "occurred_at"),
             "the events the run saw (so each segment's `sql` runs right here)", _events, more_columns=True,
             counted=False),
    Relation("audiences", tuple(schemas.AUDIENCES.names),
             "one row per audience with its definition and recipient count"),
)

# Created after the relations. utc_timestamp(ts): any timestamp-like value as the naive
# UTC TIMESTAMP stored here, whatever the session's TimeZone: a TIMESTAMPTZ at that instant;
# 'YYYY-MM-DD' at midnight UTC; text without an offset as UTC, with one (or a zone) honoured.
MACROS = {
    "utc_timestamp": r"""CREATE MACRO utc_timestamp(ts) AS
CASE typeof(ts)
    WHEN 'TIMESTAMP WITH TIME ZONE' THEN timezone('UTC', CAST(ts AS TIMESTAMPTZ))
    WHEN 'VARCHAR' THEN
        CASE
            WHEN regexp_full_match(trim(CAST(ts AS VARCHAR)), '\d{4}-\d{2}-\d{2}')
                THEN CAST(CAST(trim(CAST(ts AS VARCHAR)) AS DATE) AS TIMESTAMP)
            ELSE coalesce(
                timezone('UTC', try_cast(CAST(ts AS VARCHAR) || ' UTC' AS TIMESTAMPTZ)),
                timezone('UTC', CAST(CAST(ts AS VARCHAR) AS TIMESTAMPTZ)))
        END
    ELSE CAST(ts AS TIMESTAMP)
END""",
    "segment_members_at": """CREATE MACRO segment_members_at(segment_key, ts) AS TABLE
SELECT subscriber_id FROM segment_membership_history
WHERE segment = segment_key AND valid_from <= utc_timestamp(ts)
  AND (valid_to IS NULL OR utc_timestamp(ts) < valid_to)
ORDER BY subscriber_id""",
}
