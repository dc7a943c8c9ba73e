"""Immutable version directories under `DATA/published/versions/`.

A version is written into a hidden staging directory and renamed to its final
name only when every file is complete, so a directory with a final name is
always whole. Names are `<seq>-<as_of>Z` (e.g. `000007-20260105T020000Z`): the
sequence number orders versions even when a run replaces one with the same
`as_of`.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from pathlib import Path

from ..core.files import fsync_dir, remove_path
from ..core.settings import Paths

# Files of a version that a run writes to its workspace first, then links in.
FLAGS_FILE = "membership_flags.arrow"
RECIPIENTS_FILE = "recipients.parquet"

STAGING_PREFIX = ".staging-"
_VERSION_NAME = re.compile(r"^(\d{6,})-\d{8}T\d{6}Z\Z")


def versions_root(paths: Paths) -> Path:
    return Path(paths.published) / "versions"


def version_name(seq: int, as_of: datetime) -> str:
    return f"{seq:06d}-{as_of:%Y%m%dT%H%M%S}Z"


def version_seq(name: str) -> int | None:
    match = _VERSION_NAME.match(name)
    return int(match.group(1)) if match else None


def list_versions(paths: Paths) -> list[str]:
    """Complete version directories, oldest first."""
    root = versions_root(paths)
    if not root.exists():
        return []
    names = [p.name for p in root.iterdir() if p.is_dir() and version_seq(p.name) is not None]
    return sorted(names, key=lambda n: version_seq(n) or 0)


def next_seq(paths: Paths) -> int:
    """One more than any version on disk (the current one among them: current_state
    refuses a missing one), published or not, so a name is never reused."""
    return max((version_seq(n) or 0 for n in list_versions(paths)), default=0) + 1


def new_staging_dir(paths: Paths) -> Path:
    root = versions_root(paths)
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f"{STAGING_PREFIX}{secrets.token_hex(6)}"
    staging.mkdir()
    return staging


def finish_staging(staging: Path, final: Path) -> None:
    """Make a fully written staging directory visible under its final name."""
    fsync_dir(staging)
    staging.rename(final)
    fsync_dir(final.parent)


def prune_versions(paths: Paths, *, current: str, protected: set[str], keep: int) -> None:
    """Under the writer lock: keep the newest `keep` versions up to the current one
    (readers of an older catalog keep working while it lasts) and `protected` ones
    (the base of the current one, needed to replace it); remove the rest, newer ones
    (staged by a run that crashed before publishing) and staging directories."""
    root = versions_root(paths)
    current_seq = version_seq(current) or 0
    published = [n for n in list_versions(paths) if (version_seq(n) or 0) <= current_seq]
    kept = set(published[-keep:]) | {current} | protected
    for child in root.iterdir():
        stale_staging = child.name.startswith(STAGING_PREFIX)
        if stale_staging or (version_seq(child.name) is not None and child.name not in kept):
            remove_path(child)
    fsync_dir(root)


def relation_path(version_dir: Path, relation: str) -> Path:
    """Each published relation is one Parquet file named after it."""
    return version_dir / f"{relation}.parquet"
