"""Ingest every new landing file into the typed Parquet lake (README, "The landing folder and bad input").

Each file, kind by kind in the order of the time in their names, is archived,
skipped if the ledger knows its content, rejected whole (bad name, empty,
unreadable, or a snapshot time already taken: two snapshots of one instant are
ambiguous, so the first is kept), or else streamed through the reader and the
row rules into quarantine and the lake file, and only then into the ledger.

Ingest must not run twice at the same time on one data folder (the run
lock of the refresh job guarantees that); it is safe to kill at any moment.
To retry a rejected file after fixing the cause outside the file (say, the
field catalog), delete its entry in `DATA/lake/_ledger/`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..core.duck import bounded_connection
from ..core.files import copy_atomically, private_umask, remove_path, write_text_atomically
from ..core.settings import IngestLimits, Paths, ingest_limits
from ..segments.fields import FieldCatalog
from . import parts
from .columns import KINDS, TableSpec
from .landing import LandingIndex, archive_landing_file, linked_landing_dir, list_landing
from .layout import kept_path, part_path, quarantine_path, remove_stale_temporaries, row_hashes_path
from .ledger import INGESTED, REJECTED, Ledger, LedgerEntry
from .naming import BadLandingName, LandingName, parse_landing_name
from .normalize import normalize_batch, quarantine_rows, shown
from .problems import FileRejected, RecordTooLarge
from .readers import csv_block_sizes, first_line, open_reader


@dataclass
class Rejection:
    file: str  # landing file name
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: rejected: {self.reason}"


@dataclass
class IngestReport:
    ingested: list[str] = field(default_factory=list)  # landing file names newly ingested
    skipped: list[str] = field(default_factory=list)  # already in the ledger (same content)
    rejected: list[Rejection] = field(default_factory=list)  # newly rejected in this call
    quarantined_rows: int = 0  # newly quarantined in this call
    warnings: list[str] = field(default_factory=list)
    # landing file name -> [rows loaded, rows quarantined], for each file ingested in this call
    row_counts: dict[str, list[int]] = field(default_factory=dict)


def ingest_landing(paths: Paths, catalog: FieldCatalog, limits: IngestLimits | None = None) -> IngestReport:
    """Ingest all new landing files; idempotent. `limits` None: `settings.ingest_limits()`."""
    private_umask()
    run = _IngestRun(paths, limits or ingest_limits())
    try:
        for kind in KINDS:
            spec = TableSpec.for_kind(kind, catalog)
            linked = linked_landing_dir(paths, kind)
            if linked is not None:  # reported on every run: nothing of it is read
                run.report.rejected.append(Rejection(
                    f"{linked.name}/", f"the landing folder {linked} is a symbolic link; links are not followed"))
            for path, name in _in_order(list_landing(paths, kind)):
                run.one_file(spec, path, name)
    finally:
        run.close()
    return run.report


def _in_order(files: list[Path]) -> list[tuple[Path, LandingName | BadLandingName]]:
    """Files by the time in their names, then by name; badly named ones last."""
    parsed: list[tuple[Path, LandingName | BadLandingName]] = []
    for path in files:
        try:
            parsed.append((path, parse_landing_name(path.name)))
        except BadLandingName as exc:
            parsed.append((path, exc))
    return sorted(parsed, key=lambda item: (getattr(item[1], "at", datetime.max), item[0].name))


class _IngestRun:
    def __init__(self, paths: Paths, limits: IngestLimits) -> None:
        self.paths = paths
        self.limits = limits
        self.report = IngestReport()
        self.ledger = Ledger(paths)
        self.index = LandingIndex(paths)
        self.scratch = paths.lake / "_tmp"
        remove_path(self.scratch)  # left over by a crashed run; only ever ours
        for folder in (paths.lake, paths.archive, paths.rejected):
            remove_stale_temporaries(folder)
        self.con = bounded_connection(parts.DUCKDB_MEMORY_LIMIT, self.scratch / "duckdb")
        self.con.execute("SET enable_progress_bar = false")

    def close(self) -> None:
        self.index.save()
        self.con.close()
        remove_path(self.scratch)

    def one_file(self, spec: TableSpec, path: Path, name: LandingName | BadLandingName) -> None:
        kept = archive_landing_file(self.paths, spec.kind, path, self.index)
        if kept is None:
            self._reject_link(spec.kind, path)
            return
        sha256, archived = kept
        known = self.ledger.find(sha256, path.name)
        # The same rows exported again later are a new snapshot (nothing changed), not a copy to skip.
        if known is not None and (spec.kind != "subscribers" or known.file == path.name
                                  or (known.status == REJECTED and not known.name_bound)):
            self.report.skipped.append(path.name)
            return
        if isinstance(name, BadLandingName):
            self._reject(spec.kind, path.name, sha256, archived, None, str(name), name_bound=True)
            return
        if spec.kind == "subscribers":
            clash = next((e for e in self.ledger.entries("subscribers", INGESTED) if e.file_time == name.at), None)
            if clash is not None:
                self._reject(spec.kind, path.name, sha256, archived, name.at,
                             f"another snapshot with the same time ({name.stamp}) was already ingested from "
                             f"'{clash.file}'; snapshot times must be unique", name_bound=True)
                return
        try:
            # An empty JSONL file is a valid export of no rows; an empty CSV lacks its header.
            if archived.stat().st_size == 0 and name.fmt != "jsonl":
                raise FileRejected("the file is empty")
            entry, extras = self._load(spec, archived, name, sha256)
        except FileRejected as exc:
            self._reject(spec.kind, path.name, sha256, archived, name.at, str(exc), name_bound=False)
            return
        self.ledger.record(entry)
        self.report.ingested.append(path.name)
        self.report.quarantined_rows += entry.quarantined
        self.report.row_counts[path.name] = [entry.rows, entry.quarantined]
        self._warn(spec, entry, extras)

    def _load(self, spec: TableSpec, archived: Path, name: LandingName, sha256: str) -> tuple[LedgerEntry, list[str]]:
        """The ledger entry of the file, once its lake files are written, and its undeclared columns."""
        staging_dir = self.scratch / sha256
        for block_size in csv_block_sizes(self.limits):
            remove_path(staging_dir)
            staging = parts.Staging(staging_dir)
            reader = open_reader(archived, name.fmt, spec, block_size, self.limits)
            try:
                for batch in reader.batches():
                    staging.add(normalize_batch(batch, spec))
                reader.finish()
            except RecordTooLarge:
                continue
            except pa.ArrowException as exc:
                # Data Arrow cannot read or convert is bad input, not a crash: reject it in Arrow's words.
                raise FileRejected(f"the file cannot be read ({first_line(exc)})") from None
            finally:
                staging.close()
            break

        part = part_path(self.paths, spec.kind, name.at, sha256)
        rows = ignored = 0
        if not staging.good_files:
            parts.write_empty(spec, staging.extras, part)
        elif spec.kind == "subscribers":
            rows, superseded = parts.write_snapshot(self.con, staging, spec, part)
            if superseded.num_rows:
                for table in self._superseded_rows(spec, archived, name, block_size, superseded):
                    staging.add_quarantine(table)
                staging.close()
        elif spec.kind == "suppressions":
            rows = parts.write_suppressions(self.con, staging, part)
        else:
            earlier = [self.ledger.lake_file(e.part) for e in self.ledger.entries("events", INGESTED)
                       if e.part and self.ledger.lake_file(e.part) != part]
            rows = parts.write_events(self.con, staging, spec, part, earlier)
            ignored = staging.good_rows - rows
        if spec.kind == "subscribers":
            parts.write_row_hashes(self.con, part, row_hashes_path(part))
        quarantine = quarantine_path(self.paths, spec.kind, name.at, sha256)
        quarantined = parts.write_quarantine(self.con, staging, name.name, quarantine)
        remove_path(staging_dir)
        return LedgerEntry(
            sha256=sha256, kind=spec.kind, file=name.name, status=INGESTED, recorded_at=_now(), file_time=name.at,
            rows=rows, quarantined=quarantined, ignored=ignored, part=part.relative_to(self.paths.lake).as_posix(),
            quarantine=quarantine.relative_to(self.paths.lake).as_posix() if quarantined else None,
            name_bound=spec.kind == "subscribers",
        ), staging.extras

    def _superseded_rows(self, spec: TableSpec, archived: Path, name: LandingName, block_size: int,
                         superseded: pa.Table) -> Iterator[pa.Table]:
        """Quarantine rows for snapshot duplicates; a second pass over the file fetches their raw
        text one batch at a time (millions of identical rows must not all be in memory)."""
        losers = superseded.column("row_number").to_numpy()
        for batch in open_reader(archived, name.fmt, spec, block_size, self.limits).batches():
            positions = np.flatnonzero(np.isin(batch.row_numbers, losers))
            if not positions.size:
                continue
            rows = superseded.take(np.searchsorted(losers, batch.row_numbers[positions])).to_pydict()
            reasons = [f"duplicate {spec.key} {shown(key)}: row {winner} has the same {spec.key} and, "
                       "being the last, wins" for key, winner in zip(rows["key"], rows["winner"], strict=True)]
            yield quarantine_rows(spec.kind, rows["row_number"], reasons, batch.raw(positions),
                                  rows["key"], rows["email"], rows["status"])

    def _reject(self, kind: str, file: str, sha256: str, archived: Path | None, file_time: datetime | None,
                reason: str, *, name_bound: bool) -> None:
        kept = kept_path(self.paths.rejected, kind, sha256, file)
        if archived is not None and not kept.is_file():
            copy_atomically(archived, kept)
        write_text_atomically(kept.with_name(f"{file}.reason.txt"), reason + "\n")
        self.ledger.record(LedgerEntry(
            sha256=sha256, kind=kind, file=file, status=REJECTED, recorded_at=_now(), file_time=file_time,
            reason=reason, name_bound=name_bound,
        ))
        self.report.rejected.append(Rejection(file, reason))

    def _reject_link(self, kind: str, path: Path) -> None:
        """Rejected without reading through it, once per name and target; the link stays in landing."""
        target = os.readlink(path)
        key = hashlib.sha256(f"symlink\0{kind}\0{path.name}\0{target}".encode()).hexdigest()
        if self.ledger.find(key, path.name) is not None:
            self.report.skipped.append(path.name)
            return
        self._reject(kind, path.name, key, None, None, f"a symbolic link (to {shown(target)}); links are not followed",
                     name_bound=True)

    def _warn(self, spec: TableSpec, entry: LedgerEntry, extras: list[str]) -> None:
        warnings, file = self.report.warnings, entry.file
        for extra in extras:
            warnings.append(f"{file}: undeclared column '{extra}' kept as text "
                            f"(declare it in _fields.yaml to give it a type)")
        if entry.quarantine is not None:
            quarantine = pq.ParquetFile(self.ledger.lake_file(entry.quarantine))
            first = next(quarantine.iter_batches(batch_size=1)).to_pylist()[0]
            warnings.append(f"{file}: {entry.quarantined} row(s) quarantined "
                            f"(first: row {first['row_number']}: {first['reason']})")
        if entry.ignored:
            warnings.append(f"{file}: {entry.ignored} event(s) ignored: their event_id was already seen")
        if spec.kind == "subscribers" and entry.rows == 0:
            warnings.append(f"{file}: the snapshot has no subscribers")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
