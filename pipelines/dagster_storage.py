"""Dagster's SQLite instance storage without an fsync per event (dagster.yaml, README).

The stock layout under DAGSTER_HOME, so history written before stays in the UI; a process on
the stock classes follows a live run's log only at checkpoints, so the webserver and daemon
use this dagster.yaml too. Two things differ:
- Pooled connections: closing the last connection to a WAL database checkpoints it and
  deletes the WAL (~4 syncs per event with the stock connection per transaction).
- `synchronous=NORMAL` in WAL mode: a killed process loses nothing committed; a power
  loss can roll back the last commits, never corrupt the database.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import closing, contextmanager
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

# Run shards whose engines stay open; a webserver browsing old runs closes the least recently used.
OPEN_RUN_SHARDS = 8
_ENGINE_LOCK = threading.Lock()


def _set_pragmas(dbapi_connection: sqlite3.Connection, _record) -> None:
    dbapi_connection.execute("PRAGMA journal_mode=WAL")  # a new run shard is WAL from its first write
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def pooled_engine(conn_string: str) -> Engine:
    # A few idle connections stay open; no cap on busy ones: the webserver answers on
    # many threads, and the stock storage never made a caller wait for a connection.
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
    """The stock watchdog, also woken by writes to the run's WAL: with pooled connections a
    run's events land there first, and the stock one watches the database file only."""

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
        # The stock method, on the shard's pooled engine.
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with _transaction(engine) as conn:
                yield conn

    def has_table(self, table_name: str) -> bool:
        # Asked for every event: not a connection each time.
        engine = self._engine(INDEX_SHARD_NAME)
        with engine.connect() as conn:
            return bool(engine.dialect.has_table(conn, table_name))

    def watch(self, run_id, cursor, callback) -> None:
        # The stock watch() with the WAL-aware watchdog (swapping it in later could
        # deliver an event twice).
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
        # The stock __init__ with the pooled classes (calling it would open the stock ones).
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
    """An empty database in WAL mode for the stock code's tables: in rollback mode each
    of their dozens of statements costs ~4 fsyncs."""
    if os.path.exists(path):
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with closing(sqlite3.connect(path)) as con:
        con.execute("PRAGMA journal_mode=WAL")
