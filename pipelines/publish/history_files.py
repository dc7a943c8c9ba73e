"""How a version stores its history: append-only files plus the open stays.

Rewriting every stay and change ever recorded at every run costs time that
grows with the age of the project (at 10M subscribers x 100 segments, the
first run alone records ~100M entries). So a version stores:

- `segment_membership.parquet`: the current members, sorted by (segment,
  subscriber_id), with `valid_from` and `entered_run_id` of their open stay
  (with its parts `segment_membership.1.parquet`..., membership_files.py).
  It is the `segment_membership` relation and the open half of
  `segment_membership_history` at once;
- `history/`: append-only Parquet files listed in `history/manifest.json`,
  per kind: `changes` (membership_changes rows), `closed` (stays that ended:
  segment_membership_history rows with a valid_to) and `sizes`
  (segment_sizes rows). A run writes one file of each kind with its own rows
  and hard-links the files of the version it builds on (they never change),
  so its cost follows what changed, not what happened before. Every
  `COMPACT_AFTER` runs, a kind's files are merged into one;
- `membership_flags.arrow`: the same membership as one boolean column per
  segment (Arrow IPC), which the next run compares its own flags with
  (pipelines/publish/flag_history.py). Not a published relation.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq

from ..core import schemas

HISTORY_DIR = "history"
MANIFEST = "manifest.json"
FLAGS_FILE = "membership_flags.arrow"
KINDS = ("changes", "closed", "sizes")
COMPACT_AFTER = 32

# The schema of the rows each kind of file holds.
KIND_SCHEMAS = {"changes": schemas.CHANGES, "closed": schemas.HISTORY, "sizes": schemas.SIZES}

@dataclass
class Manifest:
    files: dict[str, list[str]] = field(default_factory=lambda: {kind: [] for kind in KINDS})

    def to_json(self) -> str:
        return json.dumps({"format": 1, "files": self.files}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        files = json.loads(text)["files"]
        return cls({kind: list(files.get(kind, [])) for kind in KINDS})


def read_manifest(version_dir: Path | None) -> Manifest | None:
    if version_dir is None:
        return None
    target = Path(version_dir) / HISTORY_DIR / MANIFEST
    return Manifest.from_json(target.read_text(encoding="utf-8")) if target.is_file() else None


def write_manifest(version_dir: Path, manifest: Manifest) -> None:
    (Path(version_dir) / HISTORY_DIR / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link (files of a version never change), a copy where links fail."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def write_table(table: pa.Table, target: Path, dictionary: list[str] | bool = True) -> None:
    """Parquet as readers want it: zstd, statistics, dictionaries where asked."""
    pq.write_table(table, target, compression="zstd", use_dictionary=dictionary)


def _concat(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    tables = [schemas.conform(t, schema, what="history") for t in tables]
    return pa.concat_tables(tables) if tables else schema.empty_table()


def _read_kind(version_dir: Path, manifest: Manifest, kind: str) -> pa.Table:
    root = Path(version_dir) / HISTORY_DIR
    return _concat([pq.read_table(root / name) for name in manifest.files[kind]], KIND_SCHEMAS[kind])


def extend_manifest(base_dir: Path | None, staging: Path, deltas: dict[str, pa.Table | Path],
                    name: str) -> Manifest:
    """`staging/history/`: the base version's files (linked) plus this run's
    `deltas` (one table or written file per kind), compacted when long."""
    root = staging / HISTORY_DIR
    root.mkdir(parents=True, exist_ok=True)
    base = read_manifest(base_dir)
    manifest = Manifest()
    if base is not None and base_dir is not None:
        for kind in KINDS:
            for file in base.files[kind]:
                link_or_copy(Path(base_dir) / HISTORY_DIR / file, root / file)
                manifest.files[kind].append(file)
    for kind in KINDS:
        target = f"{name}-{kind}.parquet"
        delta = deltas[kind]
        if isinstance(delta, Path):
            link_or_copy(delta, root / target)
        else:
            write_table(schemas.conform(delta, KIND_SCHEMAS[kind], what=kind), root / target)
        manifest.files[kind].append(target)
        if len(manifest.files[kind]) > COMPACT_AFTER:
            merged = _read_kind(staging, manifest, kind)
            compacted = f"{name}-{kind}-compacted.parquet"
            write_table(merged, root / compacted)
            for file in manifest.files[kind]:
                (root / file).unlink()
            manifest.files[kind] = [compacted]
    write_manifest(staging, manifest)
    return manifest


def write_flags(flags: pa.Table, target: Path) -> None:
    feather.write_feather(flags, str(target), compression="lz4")


def read_flags(version_dir: Path | None) -> pa.Table | None:
    if version_dir is None:
        return None
    target = Path(version_dir) / FLAGS_FILE
    return feather.read_table(str(target)) if target.is_file() else None
