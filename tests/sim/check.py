"""The published state against the oracle, after every run.

Everything is read the way an analyst or a campaign job reads it: the
warehouse opened read-only, the audience files and their manifests from disk.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
from reference import reference_history, reference_members_at, reference_recipients

from .world import norm_email


class SimFailure(AssertionError):
    pass


@dataclass
class Expected:
    """What the published state must be: the oracle's inputs."""

    runs: list[tuple[datetime, set[str], set[tuple[str, str]]]]  # surviving published runs
    subscribers: list[dict]  # the snapshot in force
    audiences: dict[str, dict]
    suppression_list: set[str]
    by_address: bool
    holdout: bool
    landed_sha256: dict[str, str]  # landing file name -> sha256 of its bytes
    quarantine: set[tuple[str, int]]  # (file, row_number) of every row ingest must quarantine


def _naive(ts):
    if isinstance(ts, datetime) and ts.tzinfo is not None:
        return ts.astimezone(UTC).replace(tzinfo=None)
    return ts


def _rows(con, sql: str, params=None) -> list[tuple]:
    return [tuple(_naive(v) for v in row) for row in con.execute(sql, params or []).fetchall()]


def diff(name: str, expected, actual, limit: int = 5) -> str | None:
    expected, actual = set(expected), set(actual)
    if expected == actual:
        return None
    missing = sorted(expected - actual, key=repr)[:limit]
    extra = sorted(actual - expected, key=repr)[:limit]
    return (f"{name}: {len(expected - actual)} missing, {len(actual - expected)} unexpected "
            f"(expected {len(expected)}, got {len(actual)})\n    missing: {missing}\n    unexpected: {extra}")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_published(data: Path, expected: Expected, *, audience_files: bool = True) -> list[str]:
    """Every difference between the published state and `expected`, as short messages."""
    problems: list[str] = []

    def same(name, want, got):
        message = diff(name, want, got)
        if message:
            problems.append(message)

    as_of, keys, membership = expected.runs[-1]
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        runs = _rows(con, "SELECT run_id, as_of FROM runs WHERE status = 'success' ORDER BY as_of, finished_at")
        if not runs or runs[-1][1] != as_of:
            problems.append(f"runs: last successful run {runs[-1:] if runs else None}, expected as_of {as_of}")
            return problems
        run_id = runs[-1][0]
        same("runs (as_of of every successful run)", [r[0] for r in expected.runs], {r[1] for r in runs})
        same("segment_membership", membership, _rows(con, "SELECT segment, subscriber_id FROM segment_membership"))
        same("segments", {(k, sum(1 for s, _ in membership if s == k)) for k in keys},
             _rows(con, "SELECT segment, members FROM segments"))
        same("subscribers (id, status)", {(s["subscriber_id"], s["status"]) for s in expected.subscribers},
             _rows(con, "SELECT subscriber_id, status FROM subscribers"))
        reference = reference_history(expected.runs)
        same("segment_membership_history", reference["history"],
             _rows(con, "SELECT segment, subscriber_id, valid_from, valid_to FROM segment_membership_history"))
        same("membership_changes", reference["changes"],
             _rows(con, "SELECT as_of, segment, subscriber_id, change FROM membership_changes"))
        same("segment_sizes", reference["sizes"],
             _rows(con, "SELECT as_of, segment, members, entered, exited FROM segment_sizes"))
        ever = sorted({k for _, ks, _ in expected.runs for k in ks})
        instants = sorted({r[0] for r in expected.runs[-3:]} | {expected.runs[0][0] - timedelta(seconds=1),
                                                                 as_of + timedelta(days=1),
                                                                 expected.runs[-1][0] - timedelta(seconds=1)})
        for ts in instants:
            want = {(seg, sid) for seg in ever for sid in reference_members_at(expected.runs, seg, ts)}
            got = set()
            for seg in ever:
                got |= {(seg, r[0]) for r in _rows(con, "SELECT subscriber_id FROM segment_members_at(?, ?)",
                                                    [seg, ts])}
            same(f"segment_members_at(*, {ts})", want, got)
        recipients = reference_recipients(expected.audiences, membership, expected.subscribers,
                                          expected.suppression_list, by_address=expected.by_address)
        group = '"group"' if expected.holdout else "'send'"
        published = _rows(con, f"SELECT audience, subscriber_id, email, {group} FROM recipients")
        if not expected.holdout:
            recipients = {(a, s, e, "send") for a, s, e, _ in recipients}
        same("recipients", recipients, published)
        same("recipients (run_id)", {run_id} if published else set(),
             {r[0] for r in _rows(con, "SELECT DISTINCT run_id FROM recipients")})
        if expected.by_address:
            in_force = expected.suppression_list | {norm_email(s["email"]) for s in expected.subscribers
                                                     if s["status"] != "active"}
            same("suppressions (addresses, trimmed and lower-cased)", in_force,
                 {r[0] for r in _rows(con, "SELECT DISTINCT lower(trim(email)) FROM suppressions")})
        same("quarantine", expected.quarantine, _rows(con, "SELECT file, row_number FROM quarantine"))

    # Never a non-active address, whatever the oracle says (checked on its own).
    blocked = {norm_email(s["email"]) for s in expected.subscribers if s["status"] != "active"}
    if expected.by_address:
        blocked |= expected.suppression_list
        bad = sorted((a, s, e) for a, s, e, _ in published if norm_email(e) in blocked)
    else:
        status = {s["subscriber_id"]: s["status"] for s in expected.subscribers}
        bad = sorted((a, s, e) for a, s, e, _ in published if status.get(s) != "active")
    if bad:
        problems.append(f"recipients: {len(bad)} suppressed address(es) published: {bad[:5]}")

    if audience_files:
        problems += check_audience_files(data, expected, run_id, {r for r in recipients if r[3] == "send"})
    problems += check_landing_kept(data, expected.landed_sha256)
    return problems


def check_audience_files(data: Path, expected: Expected, run_id: str, send: set[tuple]) -> list[str]:
    problems = []
    root = data / "audiences"
    folders = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []
    if message := diff("audience folders", expected.audiences, folders):
        problems.append(message)
    for key in expected.audiences:
        folder = root / key
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
        except (OSError, ValueError) as error:
            problems.append(f"audiences/{key}/manifest.json: {error}")
            continue
        if manifest.get("run_id") != run_id:
            problems.append(f"audiences/{key}/manifest.json names run {manifest.get('run_id')}, "
                            f"the warehouse's is {run_id}")
        for name, info in manifest.get("files", {}).items():
            if not (folder / name).is_file() or sha256(folder / name) != info.get("sha256"):
                problems.append(f"audiences/{key}/{name}: sha256 differs from its manifest")
        want = {(s, e) for a, s, e, _ in send if a == key}
        parquet = pq.read_table(folder / "recipients.parquet", columns=["subscriber_id", "email"]).to_pylist()
        if message := diff(f"audiences/{key}/recipients.parquet", want,
                           [(r["subscriber_id"], r["email"]) for r in parquet]):
            problems.append(message)
        with open(folder / "recipients.csv", newline="", encoding="utf-8") as handle:
            rows = [(r["subscriber_id"], r["email"]) for r in csv.DictReader(handle)]
        if message := diff(f"audiences/{key}/recipients.csv", want, rows):
            problems.append(message)
        if manifest.get("rows") != len(parquet):
            problems.append(f"audiences/{key}/manifest.json rows {manifest.get('rows')}, file has {len(parquet)}")
    return problems


_HASHES: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> sha256, across checks


def check_landing_kept(data: Path, landed: dict[str, str]) -> list[str]:
    """Every landing file's bytes are kept somewhere under DATA besides landing/."""
    kept = set()
    for path in data.rglob("*"):
        if path.is_symlink() or not path.is_file() or path.relative_to(data).parts[0] == "landing" \
                or path.suffix == ".duckdb":
            continue
        info = path.stat()
        key = (str(path), info.st_size, info.st_mtime_ns)
        if key not in _HASHES:
            _HASHES[key] = sha256(path)
        kept.add(_HASHES[key])
    lost = sorted(name for name, digest in landed.items() if digest not in kept)
    return [f"landing files not kept under {data} (archive/rejected): {lost[:5]}"] if lost else []
