"""Dagster's SQLite instance storage without an fsync per event.

dagster.yaml names `SqliteStorage` as the instance's storage. It keeps the
stock layout under DAGSTER_HOME (history/runs.db, one history/runs/<run>.db
per run plus index.db, schedules/schedules.db), so run history written before
stays in the UI. (A process on the stock classes reads these files, but it
follows a live run's log only at checkpoints: use this dagster.yaml for the
webserver and daemon too, as `make dev` does.) Two things differ, both about
syncing to disk:

- Connections are pooled. The stock classes open and close a connection per
  transaction, and closing the last connection to a WAL database checkpoints
  it (two fsyncs) and deletes the WAL (a directory fsync): ~4 syncs per event,
  ~550 per `segments run`.
- `synchronous=NORMAL` in WAL mode: a commit is not synced; the WAL is synced
  at checkpoints. SQLite's guarantee for this pair: a killed process loses
  nothing committed, and a power loss can only roll back the last commits
  (the latest events and run-status changes), never corrupt the database.

The UI follows a run's events by watching its file; with pooled connections
the events land in the WAL first, so that is watched too.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as db
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SqliteEventLogStorage,
    SqliteEventLogStorageWatchdog,
)
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from sqlalchemy.engine import Connection, Engine
from watchdog.observers import Observer

# Run shards whose engines (one idle connection each) stay open in a process;
# a webserver browsing old runs closes the least recently used.
OPEN_RUN_SHARDS = 8
_ENGINE_LOCK = threading.Lock()


def _set_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # a new run shard is WAL from its first write
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def pooled_engine(conn_string: str) -> Engine:
    """An engine keeping its connections open, committing with synchronous=NORMAL."""
    # A few idle connections stay open (the last one closing would checkpoint the WAL);
    # no cap on busy ones: the webserver answers on many threads, and the stock storage
    # never made a caller wait for a connection.
    engine = db.create_engine(conn_string, pool_size=5, max_overflow=-1,
                              connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False})
    db.event.listen(engine, "connect", _set_pragmas)
    return engine


@contextmanager
def _transaction(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn, conn.begin():
        yield conn


class _PooledConnect:
    """`connect()` of the stock run and schedule storages, on one pooled engine."""

    _conn_string: str
    _pooled: Engine | None = None

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with _ENGINE_LOCK:  # two threads' first calls must not each make an engine
            if self._pooled is None:
                self._pooled = pooled_engine(self._conn_string)
        with _transaction(self._pooled) as conn:
            yield conn

    def dispose(self) -> None:
        with _ENGINE_LOCK:
            if self._pooled is not None:
                self._pooled.dispose()
                self._pooled = None
        super().dispose()  # type: ignore[misc]


class PooledSqliteRunStorage(_PooledConnect, SqliteRunStorage):
    pass


class PooledSqliteScheduleStorage(_PooledConnect, SqliteScheduleStorage):
    pass


class _WalWatchdog(SqliteEventLogStorageWatchdog):
    """The stock watchdog, also woken by writes to the run's WAL."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._patterns = [self._log_path, f"{self._log_path}-wal"]

    def on_modified(self, event) -> None:
        self._process_log()


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_lock = threading.Lock()
        index = os.path.join(base_dir, f"{INDEX_SHARD_NAME}.db")
        new = not os.path.exists(index)
        _create_in_wal_mode(index)
        super().__init__(base_dir, inst_data)
        if new:  # what the stock __init__ does when index.db is missing (it is there now)
            self._initdb(self._engine(INDEX_SHARD_NAME), for_index_shard=True)
            self.reindex_events()
            self.reindex_assets()

    def _engine(self, shard: str) -> Engine:
        with self._engines_lock:
            engine = self._engines.get(shard)
            if engine is None:
                engine = self._engines[shard] = pooled_engine(self.conn_string_for_shard(shard))
            self._engines.move_to_end(shard)
            run_shards = [s for s in self._engines if s != INDEX_SHARD_NAME]
            for old in run_shards[:-OPEN_RUN_SHARDS]:
                self._engines.pop(old).dispose()
            return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        # As the stock method (one connection at a time, a shard's tables made on
        # first use), with the shard's pooled engine.
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with _transaction(engine) as conn:
                yield conn

    def has_table(self, table_name: str) -> bool:
        # Asked for every event (whether pools are on), so not a connection each time.
        engine = self._engine(INDEX_SHARD_NAME)
        with engine.connect() as conn:
            return bool(engine.dialect.has_table(conn, table_name))

    def watch(self, run_id, cursor, callback) -> None:
        # The stock watch() with the WAL-aware watchdog (scheduling the stock one
        # first and swapping it could deliver an event twice).
        observer: Any = self._obs
        if not observer:
            observer = self._obs = Observer()  # type: ignore[assignment]  # stock annotates it None
            observer.start()
        watchdog = _WalWatchdog(self, run_id, callback, cursor)
        self._watchers[run_id][callback] = (watchdog, observer.schedule(watchdog, self._base_dir, recursive=True))

    def _close_engines(self) -> None:
        with self._engines_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        self._close_engines()  # the stock wipe() deletes the run files these hold open
        super().wipe()

    def dispose(self) -> None:
        self._close_engines()
        super().dispose()


class SqliteStorage(DagsterSqliteStorage):
    """DagsterSqliteStorage (same files, same config: base_dir) with pooled, NORMAL-sync connections."""

    def __init__(self, base_dir: str, inst_data=None):
        # The stock __init__ with the pooled classes (calling it would open the stock ones too).
        self.base_dir = base_dir
        history, runs, schedules = (os.path.join(base_dir, *parts, "") for parts in
                                    (("history",), ("history", "runs"), ("schedules",)))
        for folder, name in ((history, "runs"), (schedules, "schedules")):
            _create_in_wal_mode(os.path.join(folder, f"{name}.db"))
        self._run_storage = PooledSqliteRunStorage.from_local(history)
        self._event_log_storage = PooledSqliteEventLogStorage(runs)
        self._schedule_storage = PooledSqliteScheduleStorage.from_local(schedules)
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> SqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)


def _create_in_wal_mode(path: str) -> None:
    """An empty database in WAL mode, for the stock code to make its tables in: in
    the default rollback mode each of their dozens of statements costs ~4 fsyncs
    (a new DAGSTER_HOME: 260 fsyncs, ~70 this way)."""
    if os.path.exists(path):
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA journal_mode=WAL")
    finally:
        con.close()
