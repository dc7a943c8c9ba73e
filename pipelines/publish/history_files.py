"""How a version stores its history: append-only files plus the open stays.

Rewriting every stay and change ever recorded at every run would cost time that
grows with the age of the project. So a version stores:

- `segment_membership.parquet` (and its parts, membership_files.py): the current
  members, sorted by (segment, subscriber_id), with `valid_from` and
  `entered_run_id` of their open stay; the `segment_membership` relation and the
  open half of `segment_membership_history` at once;
- `history/`: append-only Parquet files listed in `history/manifest.json`, per
  kind (KIND_SCHEMAS). A run writes one file of each kind with its own rows and
  hard-links the base version's (they never change); every `COMPACT_AFTER` runs,
  a kind's files are merged into one;
- FLAGS_FILE: the same membership as one boolean column per segment, which the
  next run compares its own flags with (flag_history.py). Not a relation.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq

from ..core import schemas
from .versions import FLAGS_FILE

HISTORY_DIR = "history"
MANIFEST = "manifest.json"
COMPACT_AFTER = 32
# Per kind, its rows: membership_changes, closed stays (segment_membership_history
# rows with a valid_to) and segment_sizes.
KIND_SCHEMAS = {"changes": schemas.CHANGES, "closed": schemas.HISTORY, "sizes": schemas.SIZES}


def read_manifest(version_dir: Path) -> dict[str, list[str]] | None:
    """The history files of a version, per kind (None for a version without history)."""
    target = Path(version_dir) / HISTORY_DIR / MANIFEST
    if not target.is_file():
        return None
    files = json.loads(target.read_text(encoding="utf-8"))["files"]
    return {kind: list(files.get(kind, [])) for kind in KIND_SCHEMAS}


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link (files of a version never change), a copy where links fail."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def extend_manifest(base_dir: Path | None, staging: Path, deltas: dict[str, Path], name: str) -> None:
    """`staging/history/`: the base version's files (linked) plus this run's
    `deltas` (one written file per kind), compacted when long."""
    root = staging / HISTORY_DIR
    root.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, list[str]] = {kind: [] for kind in KIND_SCHEMAS}
    if base_dir is not None:
        for kind, files in (read_manifest(base_dir) or {}).items():
            for file in files:
                link_or_copy(base_dir / HISTORY_DIR / file, root / file)
                manifest[kind].append(file)
    for kind, schema in KIND_SCHEMAS.items():
        target = f"{name}-{kind}.parquet"
        link_or_copy(deltas[kind], root / target)
        manifest[kind].append(target)
        if len(manifest[kind]) > COMPACT_AFTER:
            tables = [schemas.conform(pq.read_table(root / file), schema, what="history")
                      for file in manifest[kind]]
            compacted = f"{name}-{kind}-compacted.parquet"
            pq.write_table(pa.concat_tables(tables), root / compacted, compression="zstd")
            for file in manifest[kind]:
                (root / file).unlink()
            manifest[kind] = [compacted]
    (root / MANIFEST).write_text(json.dumps({"format": 1, "files": manifest}, indent=1), encoding="utf-8")


def write_flags(flags: pa.Table, target: Path) -> None:
    feather.write_feather(flags, str(target), compression="lz4")


def read_flags(version_dir: Path | None) -> pa.Table | None:
    if version_dir is None:
        return None
    target = Path(version_dir) / FLAGS_FILE
    return feather.read_table(str(target)) if target.is_file() else None
