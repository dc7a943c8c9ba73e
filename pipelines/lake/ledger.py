"""The ingest ledger: what happened to each landing file content, keyed by sha256.

One small JSON file per entry in `lake/_ledger/`, written atomically after the lake
files it points to: an entry is the commit point of an ingest (a crash before it
leaves no visible trace, a crash after it changes nothing).

Most outcomes depend only on the content (`<sha256>.json`). Those that depend on
the name as well (a bad name, a snapshot time already taken, any snapshot) are keyed
by content *and* name (`<sha256>.<name hash>.json`), so the same bytes under a
corrected name are ingested.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from ..core.files import write_text_atomically
from ..core.settings import Paths
from ..errors import UserError

_FOLDER = "_ledger"
INGESTED = "ingested"
REJECTED = "rejected"


@dataclass(frozen=True)
class LedgerEntry:
    sha256: str
    kind: str  # "subscribers" | "events"
    file: str  # landing file name
    status: str  # INGESTED | REJECTED
    recorded_at: datetime
    file_time: datetime | None = None  # the time in the file name
    rows: int = 0  # rows written to the lake
    quarantined: int = 0
    ignored: int = 0  # events dropped as already seen
    part: str | None = None  # lake file, relative to the lake folder
    quarantine: str | None = None  # quarantine file, relative to the lake folder
    reason: str | None = None  # why the file was rejected
    name_bound: bool = False  # the outcome depends on the file name too

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=datetime.isoformat) + "\n"

    @classmethod
    def from_json(cls, text: str) -> LedgerEntry:
        data = json.loads(text)
        for key in ("recorded_at", "file_time"):
            data[key] = datetime.fromisoformat(data[key]) if data.get(key) else None
        return cls(**data)


def _entry_name(sha256: str, name: str | None) -> str:
    if name is None:
        return f"{sha256}.json"
    return f"{sha256}.{hashlib.sha256(name.encode()).hexdigest()[:16]}.json"


def entry_files(paths: Paths) -> list[Path]:
    """The entries' files, sorted (not the temporaries of an entry being written)."""
    folder = paths.lake / _FOLDER
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


class Ledger:
    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self.folder = paths.lake / _FOLDER
        self._entries: dict[str, LedgerEntry] = {}
        for path in entry_files(paths):
            try:
                self._entries[path.name] = LedgerEntry.from_json(path.read_text(encoding="utf-8"))
            except (ValueError, TypeError, KeyError) as exc:
                raise UserError(f"{path}: unreadable ingest ledger entry ({exc})") from None

    def find(self, sha256: str, name: str) -> LedgerEntry | None:
        # This content under this name first: a snapshot's content may also be known under another name.
        return self._entries.get(_entry_name(sha256, name)) or self._entries.get(_entry_name(sha256, None))

    def record(self, entry: LedgerEntry) -> None:
        key = _entry_name(entry.sha256, entry.file if entry.name_bound else None)
        write_text_atomically(self.folder / key, entry.to_json())
        self._entries[key] = entry

    def entries(self, kind: str | None = None, status: str | None = None) -> list[LedgerEntry]:
        """In the order they were recorded."""
        chosen = [e for e in self._entries.values()
                  if (kind is None or e.kind == kind) and (status is None or e.status == status)]
        return sorted(chosen, key=lambda e: (e.recorded_at, e.file))

    def lake_file(self, relative: str) -> Path:
        return self.paths.lake / Path(relative)

