"""One writer at a time: an exclusive lock on `paths.lock_file` (filelock).

`flock` locks belong to the open file: the kernel releases them when the holder
dies, even by SIGKILL, so a crashed run never leaves a stale lock behind. The
lock is re-entrant for the holding thread (the orchestrator holds it for a whole
run, `publish_version` takes it again inside); another thread or process gets a
UserError at once (or after `timeout` seconds of polling).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from ..core.settings import Paths
from ..errors import UserError

_guard = threading.Lock()
# One lock object per lock file: its holds are counted per thread (thread_local),
# so the holding thread re-enters and any other thread contends like a process.
_locks: dict[Path, FileLock] = {}
# The run id the acquiring thread records in the lock file.
_acquiring = threading.local()


def _record_holder(fd: int) -> None:
    """Who holds the lock, for the message another writer gets. Informational only."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "run_id": getattr(_acquiring, "run_id", None)}).encode(), 0)


def _lock_for(lock_path: Path) -> FileLock:
    with _guard:
        if lock_path not in _locks:
            _locks[lock_path] = FileLock(lock_path, thread_local=True, on_acquired=_record_holder)
        return _locks[lock_path]


def _holder_description(lock_path: Path) -> str:
    try:
        info = json.loads(lock_path.read_text() or "{}")
    except (OSError, ValueError):
        return ""
    parts = [f"pid {info['pid']}" if info.get("pid") else "", f"run {info['run_id']}" if info.get("run_id") else ""]
    text = ", ".join(p for p in parts if p)
    return f" ({text})" if text else ""


@contextmanager
def writer_lock(paths: Paths, *, run_id: str | None = None, timeout: float = 0.0) -> Iterator[None]:
    """Hold the exclusive writer lock of this data root for the `with` block."""
    lock_path = Path(paths.lock_file).absolute()
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = _lock_for(lock_path)
    _acquiring.run_id = run_id
    try:
        lock.acquire(timeout=timeout, poll_interval=0.1)
    except Timeout:
        raise UserError(
            f"another run is in progress{_holder_description(lock_path)}; only one run may write {paths.data} "
            f"at a time (lock {lock_path})"
        ) from None
    try:
        yield
    finally:
        lock.release()
