"""Baseline (c): PostgreSQL with one query per segment, for the benchmark only.

Nothing is installed here. When Debian's `postgresql` package is present
(`/usr/lib/postgresql/<version>/bin/initdb`), `Cluster` starts a throwaway
cluster in a temporary folder on 127.0.0.1 (a free port; as the `postgres`
user through `runuser` when we are root, since PostgreSQL refuses to run as
root), loads the lake's snapshot and events with COPY, and stops it after.
Queries go through `psql`, so no Python driver is needed.

Each segment's query is the project's own `segment_query` AST rendered with
sqlglot's "postgres" dialect, plus the few translations Postgres needs
(`render` below): lists are lower-cased element by element with
`ARRAY(SELECT lower(x) FROM unnest(...))`, `ends_with` becomes a `right()`
comparison, timestamps are plain `TIMESTAMP` (`render` below).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from sqlglot import exp

_PG_TYPES = {
    "string": "TEXT",
    "integer": "BIGINT",
    "number": "DOUBLE PRECISION",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "list": "TEXT[]",
}


def _postgres_node(node: exp.Expression) -> exp.Expression:
    """The translations Postgres needs, as a tree rewrite (the compiled sqlglot,
    `sqlglot[c]`, does not allow subclassing its generators)."""
    if isinstance(node, exp.Transform):
        # list_transform(col, lambda x: f(x))  ->  ARRAY(SELECT f(x) FROM UNNEST(col) AS x)
        lam = node.expression
        unnest = exp.Unnest(expressions=[node.this], alias=exp.TableAlias(this=lam.expressions[0].copy()))
        return exp.Array(expressions=[exp.select(lam.this).from_(unnest, copy=False)])
    if isinstance(node, exp.EndsWith):
        value = node.expression
        right = exp.Right(this=node.this, expression=exp.Length(this=value.copy()))
        return exp.paren(exp.EQ(this=right, expression=value), copy=False)
    if isinstance(node, exp.StartsWith):
        return exp.Anonymous(this="STARTS_WITH", expressions=[node.this, node.expression])
    if isinstance(node, exp.ArraySize):
        return exp.Anonymous(this="CARDINALITY", expressions=[node.this])
    if isinstance(node, exp.DataType) and node.this == exp.DataType.Type.TIMESTAMPNTZ:
        return exp.DataType(this=exp.DataType.Type.TIMESTAMP, nested=False)
    return node


def render(tree: exp.Expression) -> str:
    """A tree as PostgreSQL runs it."""
    return tree.transform(_postgres_node, copy=True).sql(dialect="postgres", copy=False)


def segment_sql(project, key: str, as_of) -> str:
    from pipelines.segments.to_sql import segment_query

    return render(segment_query(project, key, as_of))


def find_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4])
                   if Path(p).parts[4].isdigit() else 0)
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_array(column: pa.ChunkedArray) -> pa.Array:
    """A list<string> column as Postgres array literals: {"a","b"} (NULL stays NULL)."""
    import numpy as np

    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    values = pc.list_flatten(column)
    escaped = pc.replace_substring(pc.replace_substring(values, "\\", "\\\\"), '"', '\\"')
    quoted = pc.binary_join_element_wise('"', escaped, '"', "")
    lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    lists = pa.ListArray.from_arrays(pa.array(offsets), quoted, mask=column.is_null())
    joined = pc.binary_join(lists, ",")
    return pc.binary_join_element_wise("{", joined, "}", "")


class Cluster:
    """A throwaway PostgreSQL cluster; use as a context manager."""

    def __init__(self, bin_dir: Path, *, work_mem: str = "256MB", shared_buffers: str = "2GB"):
        self.bin = bin_dir
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="pg-bench-"))
        self.data = self.root / "data"
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.settings = {"work_mem": work_mem, "shared_buffers": shared_buffers, "max_wal_size": "8GB",
                         "synchronous_commit": "off", "fsync": "off", "full_page_writes": "off",
                         "max_parallel_workers_per_gather": str(os.cpu_count() or 2),
                         "listen_addresses": "127.0.0.1", "unix_socket_directories": str(self.root)}

    def _run(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([*self.as_user, *args], check=True, capture_output=True, text=True, **kwargs)

    def __enter__(self) -> Cluster:
        if self.as_user:
            shutil.chown(self.root, "postgres")
        os.chmod(self.root, 0o777)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "bench", "--auth=trust", "-E", "UTF8",
                  "--locale=C")
        options = " ".join(f"-c {k}={v}" for k, v in self.settings.items())
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", f"-p {self.port} {options}", "-w",
                  "-l", str(self.root / "log"), "start")
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def psql(self, script: str, *, values_only: bool = False) -> str:
        """Run a psql script (stops at the first error); its output (`values_only`: no headers)."""
        target = self.root / f"script-{time.monotonic_ns()}.sql"
        target.write_text(script, encoding="utf-8")
        os.chmod(target, 0o644)
        extra = ["-t", "-A"] if values_only else []
        result = self._run(str(self.bin / "psql"), "-X", "-q", *extra, "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                           "-p", str(self.port), "-U", "bench", "-d", "postgres", "-f", str(target))
        target.unlink()
        return result.stdout

    def scratch(self, name: str) -> Path:
        """A path in the cluster's folder that the server's user can read and write."""
        return self.root / name

    def load(self, name: str, table: pa.Table, types: dict[str, str]) -> None:
        """CREATE TABLE name and COPY `table` into it (columns typed by the field catalog)."""
        columns = [f'"{c}" {_PG_TYPES[types.get(c, "string")]}' for c in table.column_names]
        arrays = []
        for c in table.column_names:
            column = table.column(c)
            arrays.append(_pg_array(column) if types.get(c) == "list" else column)
        csv_file = self.scratch(f"{name}.csv")
        pa_csv.write_csv(pa.Table.from_arrays(arrays, names=table.column_names), csv_file,
                         pa_csv.WriteOptions(include_header=False, quoting_style="needed"))
        os.chmod(csv_file, 0o644)
        self.psql(f"CREATE TABLE {name} ({', '.join(columns)});\n"
                  f"COPY {name} FROM '{csv_file}' WITH (FORMAT csv);\n")
        csv_file.unlink()


@contextlib.contextmanager
def maybe_cluster() -> Iterator[Cluster | None]:
    bin_dir = find_bin()
    if bin_dir is None:
        yield None
        return
    with Cluster(bin_dir) as cluster:
        yield cluster
