"""Where things live below the data root, and atomic file writes.

```
DATA/archive/<kind>/<sha256[:16]>/<landing name>      every landing file, copied before anything else
DATA/rejected/<kind>/<sha256[:16]>/<landing name>     rejected files, next to <landing name>.reason.txt
DATA/lake/subscribers/snapshot_date=YYYY-MM-DD/subscribers_<time>_<sha256[:16]>.parquet
DATA/lake/subscribers/snapshot_date=YYYY-MM-DD/_subscribers_<time>_<sha256[:16]>.row_hashes.parquet
                                                      one hash per snapshot row (see row_hashes_path)
DATA/lake/events/export_date=YYYY-MM-DD/events_<time>_<sha256[:16]>.parquet
DATA/lake/quarantine/<kind>_<time>_<sha256[:16]>.parquet
DATA/lake/_ledger/<sha256>.json                       one entry per landing content (see ledger.py)
DATA/lake/_tmp/                                       scratch space of a running ingest
```

Output names derive from the source's content hash, so re-running after a crash
rewrites the same file instead of adding a second copy. Files are written under a
temporary name and moved into place (core/files.py), and readers only open files
the ledger lists, so a file written just before a crash stays invisible.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from ..core.files import remove_path
from ..core.settings import Paths


def kept_path(root: Path, kind: str, sha256: str, name: str) -> Path:
    """A landing file kept under `root` (`paths.archive` or `paths.rejected`)."""
    return root / kind / sha256[:16] / name


def _stem(kind: str, at: datetime, sha256: str) -> str:
    return f"{kind}_{at:%Y%m%dT%H%M%SZ}_{sha256[:16]}"


def part_path(paths: Paths, kind: str, at: datetime, sha256: str) -> Path:
    partition = "snapshot_date" if kind == "subscribers" else "export_date"
    return paths.lake / kind / f"{partition}={at:%Y-%m-%d}" / f"{_stem(kind, at, sha256)}.parquet"


def row_hashes_path(snapshot_part: Path | str) -> Path:
    """The snapshot's row hashes, next to it; the `_` prefix keeps the file out of readers that
    load the folder as a dataset (Spark, pyarrow datasets)."""
    snapshot_part = Path(snapshot_part)
    return snapshot_part.with_name(f"_{snapshot_part.stem}.row_hashes.parquet")


def quarantine_path(paths: Paths, kind: str, at: datetime, sha256: str) -> Path:
    return paths.lake / "quarantine" / f"{_stem(kind, at, sha256)}.parquet"


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary files (see temp_sibling) that a killed run left behind."""
    if folder.is_dir():
        for temp in folder.rglob(".*.tmp"):
            remove_path(temp)
