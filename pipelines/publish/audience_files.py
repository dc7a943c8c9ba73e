"""Audience exports at stable paths, for campaign jobs (README "Querying as an analyst").

    DATA/audiences/<audience>/recipients.{parquet,csv}   the 'send' group: who to mail
    DATA/audiences/<audience>/holdout.{parquet,csv}      the 'holdout' group, if any: never mail
    DATA/audiences/<audience>/manifest.json              the run, and the sha256 of each file

Each file is replaced atomically (written beside, fsynced, renamed), data files
first and the manifest last: a job that finds a sha256 mismatch reads during a
publish, and reading again gives the new set. Files hold `subscriber_id`,
`email` and the audience's own `fields` only. CSV follows the landing
conventions (lists joined with `|`, timestamps ISO 8601 with `Z`); a cell a
spreadsheet would run as a formula gets a leading `'` (Parquet keeps the value).

Temporaries (`.<file>.<pid>.tmp`, recipient PII) are only ever written under
the writer lock: any found under it belong to a killed run and are removed.
An audience no longer defined loses its manifest first (a job then sees "not
published"), then our files, then the folder if empty. Files we did not write
are never touched.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..core.clock import format_ts
from ..core.files import failpoint, fsync_dir, remove_path, replace_durably, sha256_file
from ..core.schemas import HOLDOUT, SEND, UNIQUE_COLUMNS
from ..core.settings import Paths
from .lock import writer_lock
from .state import PublishedState, current_state
from .versions import relation_path

MANIFEST = "manifest.json"
# Per group: its files and the manifest's count of its rows.
_GROUP_FILES = {SEND: ("recipients.parquet", "recipients.csv", "rows"),
                HOLDOUT: ("holdout.parquet", "holdout.csv", "holdout_rows")}
OUR_FILES = (MANIFEST, *(name for files in _GROUP_FILES.values() for name in files[:2]))
# Cells a spreadsheet would read as a formula (OWASP "CSV injection").
_FORMULA_START = r"^[=+\-@\t\r]"


def audiences_root(paths: Paths) -> Path:
    return Path(paths.data) / "audiences"


def _csv_column(column: pa.ChunkedArray) -> pa.ChunkedArray:
    kind = column.type
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return pc.binary_join(column, "|")
    if pa.types.is_timestamp(kind):
        text = pc.strftime(column.cast(pa.timestamp("us")), format="%Y-%m-%dT%H:%M:%S")
        # Arrow's %S carries the microseconds (".000000"); keep them only when not zero.
        text = pc.replace_substring_regex(text, pattern=r"\.0+$", replacement="")
        return pc.binary_join_element_wise(text, "Z", "")
    if pa.types.is_boolean(kind):
        return pc.if_else(column, "true", "false")
    return column.cast(pa.string())


def _defused(text: pa.ChunkedArray) -> pa.ChunkedArray:
    risky = pc.match_substring_regex(text, _FORMULA_START)
    return pc.if_else(risky, pc.binary_join_element_wise("'", text, ""), text)


def write_csv(table: pa.Table, target: Path) -> None:
    text_table = pa.table({name: _defused(_csv_column(table.column(name))) for name in table.column_names})
    pacsv.write_csv(text_table, target, pacsv.WriteOptions(quoting_style="needed"))


def _manifest_is_current(folder: Path, version: str) -> bool:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        return manifest.get("version") == version and all(
            (folder / name).stat().st_size == info["bytes"] for name, info in manifest["files"].items()
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _write_audience(folder: Path, recipients: Path, manifest: dict) -> None:
    columns, has_holdout = manifest["columns"], manifest["holdout"] is not None
    table = pq.read_table(recipients, columns=[*columns, "group"],
                          filters=pc.field("audience") == manifest["audience"])
    folder.mkdir(parents=True, exist_ok=True)
    token = f"{os.getpid()}.tmp"
    staged: dict[str, Path] = {}
    for group in (SEND, HOLDOUT) if has_holdout else (SEND,):
        parquet_name, csv_name, count = _GROUP_FILES[group]
        rows = table.filter(pc.equal(table.column("group"), group)).select(columns)
        manifest[count] = rows.num_rows
        staged[parquet_name] = folder / f".{parquet_name}.{token}"
        staged[csv_name] = folder / f".{csv_name}.{token}"
        # Jobs read these files whole: no statistics; no dictionary for the unique columns.
        pq.write_table(rows, staged[parquet_name], compression="zstd", write_statistics=False,
                       use_dictionary=[name for name in rows.column_names if name not in UNIQUE_COLUMNS])
        write_csv(rows, staged[csv_name])
    manifest["files"] = {
        name: {"sha256": sha256_file(path), "bytes": path.stat().st_size} for name, path in staged.items()
    }
    for name, path in staged.items():
        replace_durably(path, folder / name)
        failpoint("publish:audience_file")
    if not has_holdout:  # an audience that dropped its holdout: no stale control group beside the send list
        for name in _GROUP_FILES[HOLDOUT][:2]:
            (folder / name).unlink(missing_ok=True)
    tmp_manifest = folder / f".{MANIFEST}.{token}"
    tmp_manifest.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    replace_durably(tmp_manifest, folder / MANIFEST)


def _is_temporary(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def _remove_audience(folder: Path) -> None:
    (folder / MANIFEST).unlink(missing_ok=True)
    fsync_dir(folder)
    for child in folder.iterdir():
        if child.name in OUR_FILES or _is_temporary(child.name):
            remove_path(child)
    if not any(folder.iterdir()):
        folder.rmdir()


def remove_stale_temporaries(paths: Paths) -> None:
    """Temporaries left in audience folders by a killed export (call under the writer lock)."""
    root = audiences_root(paths)
    if root.is_dir():
        for folder in root.iterdir():
            if folder.is_dir() and not folder.is_symlink():
                for child in folder.iterdir():
                    if _is_temporary(child.name) and child.is_file():
                        remove_path(child)


def resync_audience_files(paths: Paths) -> None:
    """Bring every audience's files in line with the published warehouse and remove
    stale temporaries: what the next run does first after any crash."""
    with writer_lock(paths):
        state = current_state(paths)
        if state is None:
            remove_stale_temporaries(paths)
        else:
            sync_audience_files(paths, state)


def sync_audience_files(paths: Paths, state: PublishedState) -> None:
    """Make DATA/audiences/ match the published version `state`. An audience whose
    manifest already names it is left alone: calling again after a crash finishes the job."""
    root = audiences_root(paths)
    remove_stale_temporaries(paths)
    # ParquetFile, not read_table: that imports pyarrow.dataset (and pandas), a no-op run's largest cost.
    audiences = pq.ParquetFile(relation_path(state.version_dir, "audiences")).read().to_pylist()
    recipients = relation_path(state.version_dir, "recipients")
    writes = []
    for audience in audiences:
        key = audience["audience"]
        if _manifest_is_current(root / key, state.version):
            continue
        fields = [f for f in audience["fields"] or [] if f not in ("subscriber_id", "email")]
        manifest = {
            "audience": key,
            "name": audience["name"],
            "run_id": state.run_id,
            "as_of": format_ts(state.as_of),
            "version": state.version,
            "rows": None,  # set when the audience's rows are read: the 'send' group
            "holdout": {"percent": audience["holdout_percent"], "salt": audience["holdout_salt"]}
            if audience["holdout_percent"] is not None else None,
            "columns": ["subscriber_id", "email", *fields],
            "definition_sha256": audience["definition_sha256"],
        }
        writes.append((root / key, recipients, manifest))
    # On every core (Arrow releases the GIL: ~2x on two cores at 1M subscribers); each worker
    # reads only its audience's row groups, so only as many audiences as workers are in memory.
    with ThreadPoolExecutor(max_workers=max(1, min(len(writes), os.cpu_count() or 1))) as pool:
        for done in [pool.submit(_write_audience, *w) for w in writes]:
            done.result()
    defined = {audience["audience"] for audience in audiences}
    if root.exists():
        for folder in sorted(root.iterdir()):
            if folder.is_dir() and folder.name not in defined:
                _remove_audience(folder)
