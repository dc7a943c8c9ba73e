"""The analyst catalog: a small DuckDB file of views over one version's Parquet files.

It holds no data, only the views and macros of relations.py and the one-row
`published_state` table. It is built beside `warehouse.duckdb` and renamed onto
it, so the writer never opens the analysts' file for writing: a reader holding
it open keeps its inode (the previous state) and the next open sees the new one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeGuard

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from ..core.files import fsync_file, remove_path, replace_durably
from ..core.settings import Paths
from .lock import writer_lock
from .relations import EMPTY_EVENTS, EVENT_FILES, MACROS, RELATIONS, Relation, data_root
from .state import STATE_TABLE, PublishedState, current_state, open_catalog_read_only

if TYPE_CHECKING:  # the model (and sqlglot's dialects) are not needed to open the warehouse
    from ..segments.model import Project

TEMP_CATALOG_PREFIX = ".warehouse.duckdb."


def write_event_file_list(version_dir: Path, project: Project, event_files: Sequence[Path]) -> None:
    """Record which lake event files this version's `events` view reads, relative to
    the data folder, so a moved or copied folder reads its own files. With no events
    yet, an empty file with the declared columns stands in, so segment SQL still binds."""
    root = data_root(version_dir)
    files = [Path(f).absolute().relative_to(root).as_posix() for f in event_files]
    if not files:
        pq.write_table(project.catalog.event_schema().empty_table(), version_dir / EMPTY_EVENTS)
    (version_dir / EVENT_FILES).write_text(json.dumps(files, indent=1), encoding="utf-8")


def build_catalog(target: Path, state: PublishedState) -> None:
    """Write a complete catalog for `state` into `target` (a new file)."""
    remove_path(target)
    remove_path(target.with_name(target.name + ".wal"))
    with duckdb.connect(str(target)) as con:
        for relation in RELATIONS:
            view = exp.Create(this=exp.to_table(relation.name), kind="VIEW",
                              expression=relation.query(state.version_dir))
            con.execute(view.sql(dialect="duckdb"))
        for macro in MACROS.values():
            con.execute(macro)
        con.execute(f"""CREATE TABLE {STATE_TABLE} (version VARCHAR, version_dir VARCHAR, run_id VARCHAR,
            as_of TIMESTAMP, snapshot VARCHAR, snapshot_rows BIGINT, fingerprint VARCHAR,
            base_version VARCHAR, replaces_run_id VARCHAR, inputs_signature VARCHAR, format_version INTEGER)""")
        con.register("state_row", pa.Table.from_pylist([state.to_record()]))
        con.execute(f"INSERT INTO {STATE_TABLE} BY NAME SELECT * FROM state_row")
        # Touch every relation before anyone else can: a view that does not
        # bind (a missing file, a missing column) fails the publish here.
        for relation in RELATIONS:
            check_relation(con, relation)
        con.execute("CHECKPOINT")
    fsync_file(target)


def check_relation(con: duckdb.DuckDBPyConnection, relation: Relation) -> None:
    """Raise unless `relation` binds with its registered columns. Counts come from
    Parquet metadata; a relation built on others is only bound, not run."""
    table = exp.to_table(relation.name)
    columns = {d[0] for d in con.execute(exp.select("*").from_(table).limit(0).sql(dialect="duckdb")).description}
    missing = [name for name in relation.columns if name not in columns]
    if missing:
        raise ValueError(f"warehouse relation {relation.name} lacks column(s) {', '.join(missing)}")
    if relation.counted:
        con.execute(exp.select(exp.func("count", exp.Star())).from_(table).sql(dialect="duckdb")).fetchall()


def temp_catalog_path(paths: Paths, version: str) -> Path:
    return Path(paths.data) / f"{TEMP_CATALOG_PREFIX}{version}.tmp"


def swap_in_catalog(paths: Paths, built: Path) -> None:
    """Atomically make `built` the analysts' warehouse.duckdb."""
    warehouse = Path(paths.warehouse)
    # Readers open read-only and write no WAL; a WAL left by someone who opened
    # the old catalog read-write must not be replayed onto the new one.
    remove_path(warehouse.with_name(warehouse.name + ".wal"))
    replace_durably(built, warehouse)


def remove_temp_catalogs(paths: Paths) -> None:
    """Catalogs (and their WAL files) left behind by a run that crashed before the swap."""
    for child in Path(paths.data).iterdir():
        if child.name.startswith(TEMP_CATALOG_PREFIX):
            remove_path(child)


def relink_if_moved(paths: Paths) -> None:
    """Rebuild the catalog of the published state when the data folder was moved or
    copied since (the views read files by absolute path), and swap it in."""
    def moved(state: PublishedState | None) -> TypeGuard[PublishedState]:
        return state is not None and state.recorded_dir is not None \
            and Path(state.recorded_dir).resolve() != state.version_dir.resolve()

    if not moved(current_state(paths)):
        return
    with writer_lock(paths):
        state = current_state(paths)  # again, under the lock: another process may have done it
        if moved(state):
            built = temp_catalog_path(paths, state.version)
            build_catalog(built, state)
            swap_in_catalog(paths, built)


def open_warehouse(paths: Paths) -> duckdb.DuckDBPyConnection:
    """A read-only, locked (`lock_session`) connection to the current published state,
    never a cached database of a replaced catalog (`open_catalog_read_only`)."""
    relink_if_moved(paths)
    con = open_catalog_read_only(Path(paths.warehouse))
    try:
        lock_session(con, paths)
    except duckdb.Error:
        con.close()
        raise
    return con


def lock_session(con: duckdb.DuckDBPyConnection, paths: Paths) -> None:
    """Leave the connection able to read the published versions and the lake (what the
    views read) and nothing else (no file, URL, database or extension), for good."""
    (recorded,) = con.execute(f"SELECT version_dir FROM {STATE_TABLE}").fetchall()[0]
    # The views name files by the path recorded at publish; the CLI may reach
    # the same folder by another spelling (relative, through a symlink).
    roots = {Path(recorded).absolute().parents[2], Path(paths.data).absolute(), Path(paths.data).resolve()}
    allowed = sorted({f"{root / sub}/" for root in roots for sub in ("published", "lake")})
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET allowed_directories = ?", [allowed])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
