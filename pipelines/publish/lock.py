"""One writer at a time: an exclusive `flock` on `paths.lock_file`.

`flock` (not POSIX record locks) because its lock belongs to the open file,
not the process: closing some other descriptor of the lock file cannot drop it
by accident, and the kernel releases it when the holder dies, even by SIGKILL,
so a crashed run never leaves a stale lock behind.

The lock is re-entrant for the thread that holds it, so the orchestrator can
hold it for a whole run while `stage_version` / `publish_version` take it again
inside. Another thread or process gets a UserError at once (or after
`timeout` seconds of polling).
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..core.settings import Paths
from ..errors import UserError

_registry_guard = threading.Lock()
# lock file -> [owning thread id, depth, fd]
_held: dict[Path, list[int]] = {}


def _holder_description(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode() or "{}")
    except (OSError, ValueError):
        return ""
    parts = [f"pid {info['pid']}" if info.get("pid") else "", f"run {info['run_id']}" if info.get("run_id") else ""]
    text = ", ".join(p for p in parts if p)
    return f" ({text})" if text else ""


@contextmanager
def writer_lock(paths: Paths, *, run_id: str | None = None, timeout: float = 0.0) -> Iterator[None]:
    """Hold the exclusive writer lock of this data root for the `with` block."""
    lock_path = Path(paths.lock_file).absolute()
    me = threading.get_ident()
    with _registry_guard:
        entry = _held.get(lock_path)
        if entry is not None:
            if entry[0] != me:
                raise UserError(f"another run is in progress (in this process); lock {lock_path}")
            entry[1] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _registry_guard:
                _held[lock_path][1] -= 1
        return

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = _holder_description(fd)
                os.close(fd)
                raise UserError(
                    f"another run is in progress{holder}; only one run may write {paths.data} at a time "
                    f"(lock {lock_path})"
                ) from None
            time.sleep(0.1)
    # Who holds the lock, for the message another writer gets. Informational only.
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "run_id": run_id}).encode(), 0)
    with _registry_guard:
        _held[lock_path] = [me, 1, fd]
    try:
        yield
    finally:
        with _registry_guard:
            del _held[lock_path]
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

