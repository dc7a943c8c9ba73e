"""Landing folders: list their files and archive each one before anything else.

Landing files are only ever read. Each is copied to the archive while its sha256
is computed from the very bytes copied, and everything downstream reads the copy:
a landing file that changes mid-run cannot disagree with its recorded hash.
Hidden files (editors' and uploaders' temporary files) and sub-folders are ignored.

Symbolic links are never followed (README, "Limits and hostile input"); files are
opened with O_NOFOLLOW, so a file swapped for a link after listing is not read either.
A small index remembers (size, mtime) -> sha256 per landing path, so that a large
file is not hashed again on every run.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
from pathlib import Path

from ..core.files import remove_path, replace_durably, temp_sibling, write_text_atomically
from ..core.settings import Paths
from .layout import kept_path

_CHUNK = 1 << 20


def linked_landing_dir(paths: Paths, kind: str) -> Path | None:
    """The landing folder (or `landing/` itself) when it is a symbolic link."""
    return next((f for f in (paths.landing, paths.landing / kind) if f.is_symlink()), None)


def list_landing(paths: Paths, kind: str) -> list[Path]:
    """Regular files and symbolic links (which ingest rejects), never through a link."""
    folder = paths.landing / kind
    if linked_landing_dir(paths, kind) is not None or not folder.is_dir():
        return []
    # is_file() follows a link, so ask is_symlink() first: a link is listed whatever it points to.
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and (p.is_symlink() or p.is_file()))


class LandingIndex:
    def __init__(self, paths: Paths) -> None:
        self.file = paths.lake / "_landing_index.json"
        self._data: dict[str, dict] = {}
        self._dirty = False
        with contextlib.suppress(ValueError):  # only a cache: rebuilding it costs a re-hash, nothing else
            self._data = json.loads(self.file.read_text(encoding="utf-8")) if self.file.is_file() else {}

    def known_sha256(self, kind: str, path: Path) -> str | None:
        entry = self._data.get(f"{kind}/{path.name}")
        stat = path.lstat()
        if entry and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
            return entry.get("sha256")
        return None

    def remember(self, kind: str, path: Path, sha256: str, size: int, mtime_ns: int) -> None:
        self._data[f"{kind}/{path.name}"] = {"size": size, "mtime_ns": mtime_ns, "sha256": sha256}
        self._dirty = True

    def save(self) -> None:
        if self._dirty:
            write_text_atomically(self.file, json.dumps(self._data, indent=1, sort_keys=True))
            self._dirty = False


def archive_landing_file(paths: Paths, kind: str, path: Path, index: LandingIndex) -> tuple[str, Path] | None:
    """Copy a landing file into the archive (once per content and name); return (sha256, archived copy),
    or None for a symbolic link (also one swapped in after listing), which is never read through."""
    if path.is_symlink():
        return None
    known = index.known_sha256(kind, path)
    if known is not None:
        target = kept_path(paths.archive, kind, known, path.name)
        if target.is_file():
            return known, target
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return None
        raise
    stat = os.fstat(fd)
    temp = temp_sibling(paths.archive / kind / path.name)
    digest = hashlib.sha256()
    try:
        with open(fd, "rb") as source, open(temp, "wb") as copy:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                copy.write(chunk)
        sha256 = digest.hexdigest()
        target = kept_path(paths.archive, kind, sha256, path.name)
        if target.is_file():
            remove_path(temp)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            replace_durably(temp, target)
    except BaseException:
        remove_path(temp)
        raise
    index.remember(kind, path, sha256, stat.st_size, stat.st_mtime_ns)
    return sha256, target
