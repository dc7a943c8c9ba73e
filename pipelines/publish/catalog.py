"""The analyst catalog: a small DuckDB file of views over one version's Parquet files.

The catalog holds no data, only view definitions (from `sql/views/`, or
generated over the files of segment_membership and the history relations in
history_files.py; with the version directory's ABSOLUTE path: DuckDB resolves
relative paths against the reader's working directory, not the catalog's), the
`segment_members_at` table macro and the one-row `published_state` table. It
is built beside `warehouse.duckdb` and renamed onto it, so the writer never
opens the analysts' file for writing: a reader holding it open keeps its
inode (the previous state) and the next open sees the new one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from ..core.duck import parquet_scan
from ..core.files import fsync_file, remove_path, replace_durably
from ..core.settings import Paths
from ..segments.model import Project
from .history_files import history_view_sql, membership_view_sql
from .lock import writer_lock
from .state import STATE_TABLE, PublishedState, current_state, open_catalog_read_only

# sql/ lives at the repository root, beside the package.
SQL_VIEWS_DIR = Path(__file__).resolve().parents[2] / "sql" / "views"

# Relations backed by one Parquet file each, named after the relation.
PARQUET_RELATIONS = (
    "subscribers",
    "segments",
    "segment_membership",
    "segment_membership_history",
    "membership_changes",
    "segment_sizes",
    "runs",
    "recipients",
    "suppressions",
    "audiences",
    "quarantine",
)
HISTORY_RELATIONS = ("segment_membership_history", "membership_changes", "segment_sizes")
# Built on the relations above, in this order.
DERIVED_OBJECTS = ("segment_overlap", "utc_timestamp", "segment_members_at")
CATALOG_OBJECTS = PARQUET_RELATIONS + DERIVED_OBJECTS

VERSION_DIR_PLACEHOLDER = "{{version_dir}}"
EVENT_FILES = "event_files.json"
EMPTY_EVENTS = "events_empty.parquet"
TEMP_CATALOG_PREFIX = ".warehouse.duckdb."


def view_sql(name: str, version_dir: Path) -> str:
    """The DDL of one catalog object, pointed at `version_dir`."""
    text = (SQL_VIEWS_DIR / f"{name}.sql").read_text(encoding="utf-8")
    literal_safe = str(version_dir.absolute()).replace("'", "''")
    return text.replace(VERSION_DIR_PLACEHOLDER, literal_safe)


def _data_root(version_dir: Path) -> Path:
    return version_dir.absolute().parents[2]  # DATA/published/versions/<version>


def write_event_file_list(version_dir: Path, project: Project, event_files: Sequence[Path]) -> None:
    """Record which lake event files this version's `events` view reads, relative to
    the data folder, so a moved or copied folder reads its own files.

    With no events yet, an empty file with the declared event columns stands
    in, so compiled segment SQL (which reads `events`) still binds.
    """
    root = _data_root(version_dir)
    files = [Path(f).absolute().relative_to(root).as_posix() for f in event_files]
    if not files:
        pq.write_table(project.catalog.event_schema().empty_table(), version_dir / EMPTY_EVENTS)
    (version_dir / EVENT_FILES).write_text(json.dumps(files, indent=1), encoding="utf-8")


def events_view_sql(version_dir: Path) -> str:
    # Paths resolved against the version's own data folder (where it is now), and the
    # stand-in relative to the final version folder (the staging folder is renamed).
    root = _data_root(version_dir)
    listing = json.loads((version_dir / EVENT_FILES).read_text(encoding="utf-8"))
    files = [str(root / name) for name in listing] or [str((version_dir / EMPTY_EVENTS).absolute())]
    query = exp.select("*").from_(parquet_scan(files, union_by_name=True))
    return f"CREATE VIEW events AS {query.sql(dialect='duckdb')}"


def build_catalog(target: Path, state: PublishedState) -> None:
    """Write a complete catalog for `state` into `target` (a new file)."""
    remove_path(target)
    remove_path(target.with_name(target.name + ".wal"))
    con = duckdb.connect(str(target))
    try:
        for name in CATALOG_OBJECTS:
            # History relations are stored as append-only files (history_files.py).
            if name in HISTORY_RELATIONS:
                con.execute(history_view_sql(name, state.version_dir))
            elif name == "segment_membership":
                con.execute(membership_view_sql(state.version_dir))
            else:
                con.execute(view_sql(name, state.version_dir))
        con.execute(events_view_sql(state.version_dir))
        record = state.to_record()
        con.register("state_row", pa.Table.from_pylist([record]))
        con.execute(f"""
            CREATE TABLE {STATE_TABLE} AS
            SELECT version, version_dir, run_id, CAST(as_of AS TIMESTAMP) AS as_of, snapshot,
                   CAST(snapshot_rows AS BIGINT) AS snapshot_rows, fingerprint,
                   CAST(base_version AS VARCHAR) AS base_version,
                   CAST(replaces_run_id AS VARCHAR) AS replaces_run_id,
                   CAST(format_version AS INTEGER) AS format_version
            FROM state_row
        """)
        con.unregister("state_row")
        # Touch every relation before anyone else can: a view that does not
        # bind (a missing file, a wrong column) fails the publish here. Counts
        # come from Parquet metadata; the overlap join is only bound, not run.
        for name in PARQUET_RELATIONS:
            con.sql(f"SELECT count(*) FROM {name}").fetchall()
        con.sql("SELECT * FROM segment_overlap LIMIT 0").fetchall()
        con.execute("CHECKPOINT")
    finally:
        con.close()
    fsync_file(target)


def temp_catalog_path(paths: Paths, version: str) -> Path:
    return Path(paths.data) / f"{TEMP_CATALOG_PREFIX}{version}.tmp"


def swap_in_catalog(paths: Paths, built: Path) -> None:
    """Atomically make `built` the analysts' warehouse.duckdb."""
    warehouse = Path(paths.warehouse)
    # Readers open read-only and write no WAL; a WAL left by someone who opened
    # the old catalog read-write must not be replayed onto the new one.
    remove_path(warehouse.with_name(warehouse.name + ".wal"))
    replace_durably(built, warehouse)


def remove_temp_catalogs(paths: Paths) -> list[str]:
    """Catalogs (and their WAL files) left behind by a run that crashed before the swap."""
    root = Path(paths.data)
    if not root.exists():
        return []
    removed = []
    for child in root.iterdir():
        if child.name.startswith(TEMP_CATALOG_PREFIX):
            remove_path(child)
            removed.append(child.name)
    return removed


def relink_if_moved(paths: Paths) -> bool:
    """Point the warehouse's views at this data folder again when the folder was
    moved or copied since the last publish (the views read files by absolute path).
    Rebuilds the catalog of the same published state and swaps it in; True if it did."""
    def moved(state) -> bool:
        return state is not None and state.recorded_dir is not None \
            and Path(state.recorded_dir).resolve() != state.version_dir.resolve()

    if not moved(current_state(paths)):
        return False
    with writer_lock(paths):
        state = current_state(paths)  # again, under the lock: another process may have done it
        if not moved(state):
            return False
        built = temp_catalog_path(paths, state.version)
        build_catalog(built, state)
        swap_in_catalog(paths, built)
    return True


def open_warehouse(paths: Paths) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the current published state (for CLI queries and checks).

    Safe in long-running processes: unlike `duckdb.connect(path, read_only=True)`
    it never hands back a cached database of a catalog that has been replaced.
    The session is locked (`lock_session`): it can read the published files
    and nothing else.
    """
    relink_if_moved(paths)
    con = open_catalog_read_only(Path(paths.warehouse))
    try:
        lock_session(con, paths)
    except duckdb.Error:
        con.close()
        raise
    return con


def lock_session(con: duckdb.DuckDBPyConnection, paths: Paths) -> None:
    """Leave the connection able to read the published versions and the lake (what
    the views read) and nothing else: no other file, URL or database, no
    extension install or load, and no setting can be changed back."""
    (recorded,) = con.execute(f"SELECT version_dir FROM {STATE_TABLE}").fetchone()
    # The views name files by the path recorded at publish; the CLI may reach
    # the same folder by another spelling (relative, through a symlink).
    roots = {Path(recorded).absolute().parents[2], Path(paths.data).absolute(), Path(paths.data).resolve()}
    allowed = sorted({f"{root / sub}/" for root in roots for sub in ("published", "lake")})
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET allowed_directories = ?", [allowed])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


__all__ = [
    "CATALOG_OBJECTS",
    "PARQUET_RELATIONS",
    "SQL_VIEWS_DIR",
    "build_catalog",
    "lock_session",
    "open_warehouse",
    "relink_if_moved",
    "remove_temp_catalogs",
    "swap_in_catalog",
    "temp_catalog_path",
    "view_sql",
]
