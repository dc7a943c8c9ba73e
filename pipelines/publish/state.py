"""The pointer to the published version: what readers see and runs build on.

The catalog `DATA/warehouse.duckdb` holds a one-row table `published_state`;
each version directory holds the same record as `state.json`, so the version
a replacement run builds on can be read without a catalog.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from ..core.clock import format_ts
from ..core.settings import Paths
from ..core.sql import string
from ..errors import UserError
from .versions import versions_root

STATE_FILE = "state.json"
STATE_TABLE = "published_state"
# The layout of published versions. A version of another format is refused, not
# read half-right: there is no conversion (2: event files relative to the data folder).
FORMAT_VERSION = 2


@dataclass(frozen=True)
class PublishedState:
    version: str
    version_dir: Path
    run_id: str
    as_of: datetime
    snapshot_rows: int
    snapshot: str
    fingerprint: str
    # The version whose history this one extends (None for the first run); a run
    # replacing this one builds on it too (history_base).
    base_version: str | None = None
    replaces_run_id: str | None = None
    # The run's inputs as they lay on disk (run/inputs.py): the same again is a no-op.
    inputs_signature: str | None = None
    # The version folder as the catalog recorded it; differs from `version_dir`
    # when the data folder was moved since (catalog.relink_if_moved).
    recorded_dir: str | None = field(default=None, compare=False)

    def to_record(self) -> dict:
        record = {k: v for k, v in asdict(self).items() if k != "recorded_dir"}
        return {**record, "version_dir": str(self.version_dir), "as_of": self.as_of.isoformat(),
                "format_version": FORMAT_VERSION}

    @classmethod
    def from_record(cls, record: dict, versions_dir: Path) -> PublishedState:
        found = record.get("format_version")
        if found != FORMAT_VERSION:
            data = versions_dir.absolute().parents[1]
            raise UserError(
                f"{data} was published by another version of this pipeline (format {found}, this one reads "
                f"{FORMAT_VERSION}); move {data / 'warehouse.duckdb'} and {data / 'published'} away to start over"
            )
        as_of = record["as_of"]
        return cls(
            version=record["version"],
            # From the versions folder, not the stored path: a moved data folder finds its versions.
            version_dir=(versions_dir / record["version"]).absolute(),
            run_id=record["run_id"],
            as_of=datetime.fromisoformat(as_of) if isinstance(as_of, str) else as_of,
            snapshot_rows=int(record["snapshot_rows"]),
            snapshot=record["snapshot"],
            fingerprint=record["fingerprint"],
            base_version=record.get("base_version"),
            replaces_run_id=record.get("replaces_run_id"),
            inputs_signature=record.get("inputs_signature"),
            recorded_dir=record.get("version_dir"),
        )


def write_state_file(directory: Path, state: PublishedState) -> None:
    (directory / STATE_FILE).write_text(json.dumps(state.to_record(), indent=2) + "\n")


def read_state_file(version_dir: Path) -> PublishedState:
    """The state record of one (complete) version directory."""
    try:
        record = json.loads((version_dir / STATE_FILE).read_text())
    except FileNotFoundError:
        raise UserError(
            f"published version {version_dir.name} is missing ({version_dir}); it may have been deleted by hand"
        ) from None
    return PublishedState.from_record(record, version_dir.parent)


def history_base(previous: PublishedState | None,
                 as_of: datetime) -> tuple[PublishedState | None, str | None]:
    """The state a run at `as_of` builds on, and the run it replaces (if any), given
    the published state `previous`."""
    if previous is None:
        return None, None
    if as_of > previous.as_of:
        return previous, None
    if as_of == previous.as_of:
        base_dir = previous.version_dir.parent / previous.base_version if previous.base_version else None
        return (read_state_file(base_dir) if base_dir else None), previous.run_id
    raise UserError(
        f"as_of {format_ts(as_of)} is before the last published run {previous.run_id} "
        f"(as_of {format_ts(previous.as_of)}); history only moves forward — run with a later as_of"
    )


def open_catalog_read_only(warehouse: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the catalog file as it is *now*: `duckdb.connect(path)`
    may return the cached database of a connection still open in this process (a
    replaced catalog); attaching into a fresh in-memory database opens the current file."""
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH {string(str(warehouse.absolute()))} AS warehouse (READ_ONLY)")
        con.execute("USE warehouse")
    except duckdb.Error:
        con.close()
        raise
    return con


# Catalog files are replaced, never modified, so (inode, times, size) identifies
# one catalog: reading its state again is needless work within a run.
_state_cache: dict[Path, tuple[tuple[int, ...], PublishedState]] = {}


def current_state(paths: Paths) -> PublishedState | None:
    """The published state, or None before the first publish."""
    warehouse = Path(paths.warehouse).absolute()
    try:
        stat = warehouse.stat()
    except FileNotFoundError:
        return None
    identity = (stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size)
    cached = _state_cache.get(warehouse)
    if cached and cached[0] == identity and cached[1].version_dir.is_dir():
        return cached[1]
    state = _read_catalog_state(paths, warehouse)
    _state_cache[warehouse] = (identity, state)
    return state


def _read_catalog_state(paths: Paths, warehouse: Path) -> PublishedState:
    try:
        con = open_catalog_read_only(warehouse)
    except duckdb.Error as error:
        raise UserError(f"cannot open {warehouse}: {error}") from None
    try:
        rows = con.sql(f"SELECT * FROM {STATE_TABLE}").to_arrow_table().to_pylist()
    except duckdb.CatalogException:
        raise UserError(
            f"{warehouse} was not published by this pipeline (no {STATE_TABLE} table); "
            "move it away to start over"
        ) from None
    finally:
        con.close()
    if len(rows) != 1:
        raise UserError(f"{warehouse}: {STATE_TABLE} must have one row, found {len(rows)}")
    state = PublishedState.from_record(rows[0], versions_root(paths))
    if not state.version_dir.is_dir():
        raise UserError(
            f"{warehouse} points at version {state.version}, but {state.version_dir} is missing; "
            "restore it, or move the warehouse away to start history over"
        )
    return state
