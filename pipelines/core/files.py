"""Durable file operations and named failpoints for crash tests.

A rename is only as durable as the directory entry that records it, so every
atomic replace here fsyncs the file first and its directory after.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from pathlib import Path

# Failpoints: with SEGMENTS_PUBLISH_PAUSE_AT=<name> a process that reaches the
# failpoint <name> writes `<name>.reached` into SEGMENTS_PUBLISH_PAUSE_DIR and
# sleeps, so a crash test can SIGKILL it at exactly that step. Unset (always, in
# production) a failpoint costs one dictionary lookup.
PAUSE_AT_ENV = "SEGMENTS_PUBLISH_PAUSE_AT"
PAUSE_DIR_ENV = "SEGMENTS_PUBLISH_PAUSE_DIR"


def failpoint(name: str) -> None:
    if os.environ.get(PAUSE_AT_ENV) != name:
        return
    marker_dir = Path(os.environ.get(PAUSE_DIR_ENV) or ".")
    marker_dir.mkdir(parents=True, exist_ok=True)
    (marker_dir / f"{name.replace(':', '_')}.reached").write_text(str(os.getpid()))
    time.sleep(3600)


# Published files hold subscriber data: never readable or writable by other
# users (files 0640, folders 0750), whatever umask the process started with.
PRIVATE_UMASK = 0o027


def private_umask() -> None:
    """Tighten this process's umask so nothing it writes from now on (Parquet,
    DuckDB, CSV, copies of landing files) is world-readable. Only ever adds bits."""
    os.umask(os.umask(PRIVATE_UMASK) | PRIVATE_UMASK)


def fsync_file(path: Path, flags: int = os.O_RDONLY) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fsync_file(path, os.O_RDONLY | os.O_DIRECTORY)


def replace_durably(source: Path, target: Path) -> None:
    """Atomically move a fully written file (or directory) onto `target`."""
    if source.is_file():
        fsync_file(source)
    os.replace(source, target)
    fsync_dir(target.parent)


def temp_sibling(target: Path) -> Path:
    """A temporary name in the target's folder (same file system, so the final
    os.replace is atomic); `.*.tmp`, which cleanups of a killed run look for."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp"


def write_text_atomically(target: Path, text: str) -> None:
    tmp = temp_sibling(target)
    tmp.write_bytes(text.encode("utf-8"))
    replace_durably(tmp, target)


def copy_atomically(source: Path, target: Path) -> None:
    tmp = temp_sibling(target)
    shutil.copyfile(source, tmp)
    replace_durably(tmp, target)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def remove_path(path: Path) -> None:
    """Remove a file or a directory tree; a path already gone is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
