"""The Spark session the `spark` engine runs on: one per process, from configuration.

Where Spark runs, first match wins (docs/scale-out.md, "Where Spark runs"): the
arguments of `get_spark_session`, `SEGMENTS_SPARK_REMOTE`, `SEGMENTS_SPARK_MASTER`,
the master of the `spark-submit` that launched this process, else `local[*]`.
BASE_CONF is always set, local masters also get LOCAL_CONF's defaults.

pyspark is an optional extra: nothing here imports it at module level.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import UserError

ENV_MASTER = "SEGMENTS_SPARK_MASTER"
ENV_REMOTE = "SEGMENTS_SPARK_REMOTE"
# Set by spark-submit / pyspark shells for the Python driver they start.
ENV_LAUNCHED = "PYSPARK_GATEWAY_PORT"
DEFAULT_MASTER = "local[*]"

INSTALL_HINT = (
    "the spark engine needs pyspark, which is not installed: "
    "pip install 'segment-pipeline[spark]' (or: pip install 'pyspark>=4,<5')"
)

# Always on, whatever the master (runtime SQL settings: also applied to a session
# that already existed, e.g. spark-submit's).
BASE_CONF: dict[str, str] = {
    # The lake's timestamps are naive UTC: with a UTC session, `CAST(ts AS DATE)` is
    # the UTC calendar date whatever the machine's zone.
    "spark.sql.session.timeZone": "UTC",
    # The compiled SQL escapes quotes and backslashes in string literals with a
    # backslash ('O\'Brien'); a cluster-wide `true` here would misread them.
    "spark.sql.parser.escapedStringLiterals": "false",
}
# Defaults for local masters (a later `conf` wins): the default 200 shuffle partitions
# are for clusters (evaluation on one machine shuffles small data).
LOCAL_CONF: dict[str, str] = {
    "spark.sql.shuffle.partitions": "4",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
}

_MASTER = re.compile(r"^(local(\[(\*|\d+)(,\s*\d+)?\])?|local-cluster\[.+\]|spark://.+|yarn|k8s://.+)\Z")
_REMOTE = re.compile(r"^sc://.+")

_session: Any = None
_lock = threading.Lock()


@dataclass(frozen=True)
class SparkSettings:
    """Where to run (at most one of `master`, `remote`; neither: as spark-submit
    launched this process) and the configuration to set."""

    master: str | None
    remote: str | None
    conf: dict[str, str]

    @property
    def is_local(self) -> bool:
        return self.remote is None and (self.master or "").startswith("local")


def spark_settings(master: str | None = None, remote: str | None = None, conf: Mapping[str, Any] | None = None,
                   env: Mapping[str, str] | None = None) -> SparkSettings:
    """Resolve arguments and environment into settings (see the module docstring)."""
    env = os.environ if env is None else env
    if master and remote:
        raise UserError("give either a Spark master or a Spark Connect address, not both")
    if not master and not remote:
        remote = env.get(ENV_REMOTE) or None
        master = env.get(ENV_MASTER) or None
        if master and remote:
            raise UserError(f"set either {ENV_MASTER} or {ENV_REMOTE}, not both")
    defaults: dict[str, str] = {}
    if remote:
        if not _REMOTE.match(remote):
            raise UserError(f"Spark Connect address '{remote}' should look like sc://host:15002 ({ENV_REMOTE})")
    elif master or not env.get(ENV_LAUNCHED):  # else under spark-submit: its --master and --conf apply
        master = master or DEFAULT_MASTER
        if not _MASTER.match(master):
            raise UserError(f"Spark master '{master}' is not a master URL: use local[*], spark://host:7077, "
                            f"yarn or k8s://https://host:port ({ENV_MASTER})")
        defaults = LOCAL_CONF if master.startswith("local") else {}
    given = {str(k): str(v) for k, v in (conf or {}).items()}
    merged = {**defaults, **given, **BASE_CONF}  # BASE_CONF last: not negotiable
    return SparkSettings(master=None if remote else master, remote=remote, conf=merged)


def _alive(session: Any) -> bool:
    stopped = getattr(session, "is_stopped", None)  # Spark Connect sessions
    if isinstance(stopped, bool):
        return not stopped
    try:
        return session.sparkContext._jsc is not None  # classic: None once stopped
    except Exception:
        return False


def _reachable(remote: str) -> None:
    """Refuse at once when nothing listens: the Connect client would retry for minutes."""
    address = urlsplit(remote.replace("sc://", "http://", 1))
    try:
        with socket.create_connection((address.hostname or "", address.port or 15002), timeout=10):
            pass
    except (OSError, ValueError) as error:
        raise UserError(f"could not start Spark on {remote}: {getattr(error, 'strerror', None) or error}") from None


def _build(settings: SparkSettings) -> Any:
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("segment-pipeline")
    if settings.remote:
        _reachable(settings.remote)
        builder = builder.remote(settings.remote)
    elif settings.master:
        builder = builder.master(settings.master)
    for key, value in settings.conf.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
        # getOrCreate may return a session someone else configured (e.g. spark-submit's);
        # these are runtime SQL settings, so make sure of them. (For Spark Connect this
        # is also the first call that reaches the server.)
        for key, value in BASE_CONF.items():
            session.conf.set(key, value)
    except ImportError as error:  # Connect client dependencies (pandas, grpcio, ...) missing
        raise UserError("Spark Connect (SEGMENTS_SPARK_REMOTE) needs the Connect client: "
                        f"pip install 'pyspark[connect]>=4,<5' ({error})") from None
    except Exception as error:
        where = settings.remote or settings.master or "the spark-submit master"
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        hint = "" if settings.remote else " (Spark needs Java 17 or newer on PATH or in JAVA_HOME)"
        raise UserError(f"could not start Spark on {where}: {first}{hint}") from None
    if settings.is_local:
        with contextlib.suppress(Exception):  # not available on every kind of session
            session.sparkContext.setLogLevel("ERROR")
    return session


def get_spark_session(master: str | None = None, remote: str | None = None,
                      conf: Mapping[str, Any] | None = None) -> Any:
    """The process's Spark session, created on first use and reused until stopped:
    arguments (or the environment) only matter for the call that creates it."""
    global _session
    with _lock:
        try:  # on every call, as the engine did before asking for a session (cheap once imported)
            import pyspark  # noqa: F401
        except ImportError:
            raise UserError(INSTALL_HINT) from None
        if _session is not None and _alive(_session):
            return _session
        _session = _build(spark_settings(master, remote, conf))
        return _session
