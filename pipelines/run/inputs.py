"""A run's inputs as they lie on disk, hashed without reading the landing files.

A run whose `as_of` and inputs signature equal the published version's would
publish nothing new, so `segments run` says so before it starts Dagster (a
no-op answers in well under a second). The signature covers the definitions'
bytes, every landing file (by the sha256 ingest recorded for its size and
mtime), the ingest ledger's entries and the evaluation semantics. When a
landing file has not been hashed yet, or is a link, there is no signature: only
a run can tell, and it does (run/prepare.py compares content fingerprints).
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime
from pathlib import Path

from ..core.clock import format_ts
from ..core.files import sha256_file
from ..core.settings import SEMANTICS_VERSION, Paths
from ..lake.columns import KINDS
from ..lake.landing import LandingIndex, linked_landing_dir, list_landing
from ..lake.ledger import entry_files
from ..publish.state import PublishedState, current_state


def definitions_digest(root: Path) -> str | None:
    """The sha256 of every `.yaml` file below `root` (path and bytes; a link by its target,
    never followed): a superset of what the loader reads, so an edit it would see changes
    the digest. None when one cannot be read (the loader says why)."""
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if not name.endswith(".yaml"):
                continue
            path = Path(folder) / name
            try:
                if path.is_symlink():
                    content = f"link {os.readlink(path)}"
                elif path.is_file():
                    content = sha256_file(path)
                else:  # a FIFO or a device: never opened
                    content = "other"
            except OSError:
                return None
            digest.update(f"{path.relative_to(root).as_posix()}\0{content}\n".encode())
    return digest.hexdigest()


def inputs_signature(paths: Paths, as_of: datetime, definitions: str | None) -> str | None:
    """The run's inputs at `as_of`, given the `definitions_digest`; None when a landing
    file is new, changed since ingest hashed it, or a link (a run must look at it)."""
    if definitions is None:
        return None
    entries = [path.name for path in entry_files(paths)]
    recorded = {name.split(".", 1)[0] for name in entries}  # <sha256>[.<name hash>].json
    index = LandingIndex(paths)
    digest = hashlib.sha256(f"as_of {format_ts(as_of)}\nsemantics {SEMANTICS_VERSION}\n"
                            f"definitions {definitions}\n".encode())
    for kind in KINDS:
        if linked_landing_dir(paths, kind) is not None:
            return None
        for path in list_landing(paths, kind):
            try:
                sha256 = None if path.is_symlink() else index.known_sha256(kind, path)
            except FileNotFoundError:  # gone since it was listed
                return None
            if sha256 is None or sha256 not in recorded:
                return None
            digest.update(f"landing {kind}/{path.name} {sha256}\n".encode())
    for name in entries:
        digest.update(f"ledger {name}\n".encode())
    return digest.hexdigest()


def published_unchanged(paths: Paths, as_of: datetime) -> PublishedState | None:
    """The published state when it was made from these very inputs at this `as_of`:
    a run would publish nothing new (it would end as unchanged in run/prepare.py)."""
    state = current_state(paths)
    if state is None or state.inputs_signature is None:
        return None
    root = Path(paths.defs)
    signature = inputs_signature(paths, as_of, definitions_digest(root) if root.is_dir() else None)
    return state if signature == state.inputs_signature else None
