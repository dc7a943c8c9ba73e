"""The benchmark: our refresh against naive baselines, in one run, on one machine.

    python bench/run.py --size 1M            # `make bench` (SIZE=10M make bench)

1. Data (cached in bench/data/<size>/, not timed): the sample data
   (`pipelines.sample_data`) as Parquet landing files at T0 = 2026-11-01
   00:00Z, a second snapshot at T0+3h with 1% of subscribers changed plus a
   small events export (`sample_data.changes`), both ingested once.
   Definitions: `bench/definitions.py` (100 segments by default).
2. Measured, each in a child process (its peak RSS is its own `ru_maxrss`):
   - ours: two full refreshes through the library steps of `pipelines/run/`
     (the first run at T0+1h, then the steady-state one at T0+2h, `--full`):
     evaluate + history + recipients + publish, step by step; the Polars
     engine's evaluation of the same run;
   - baseline (a): one DuckDB query per segment, the project's own compiled
     SQL (`compile_segment`), run one at a time in dependency order, each
     inserting its members into `segment_membership` (which later segments read);
   - baseline (b): one Polars query per segment (its own event aggregation,
     references looked up in the members computed before);
   - baseline (c): PostgreSQL, one query per segment (bench/postgres.py),
     when Debian's `postgresql` package is installed (skipped otherwise);
   - validate + compile 1,000 definitions;
   - the hourly incremental run at T0+3h against a `--full` run of the same
     inputs on a copy of the state (their published tables must be equal);
   - `segments run` once, wall time (Dagster and process start included).
   Every baseline's membership must equal ours (asserted).
3. Writes bench/results/<size>-<date>-<commit>.md (machine, versions, the table) and prints it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
try:
    import pipelines  # noqa: F401
except ImportError:  # a checkout that is not installed
    sys.path.insert(0, str(ROOT))

from definitions import write_definitions  # noqa: E402
from generate import parse_size  # noqa: E402

T0 = datetime(2026, 11, 1)  # the sample data's snapshot time (naive UTC)
FIRST_RUN = T0 + timedelta(hours=1)
FULL_RUN = T0 + timedelta(hours=2)
CHANGED = T0 + timedelta(hours=3)  # the second snapshot and the incremental run
SEED = 7
# Bump when the cached data's recipe changes (2: snapshots stored sorted at ingest;
# 3: events stored sorted by subscriber_id).
DATA_VERSION = "3"
# From this size on, only our own refresh and validate are measured by default: the
# baselines would take hours (PostgreSQL ~9 h, extrapolating 10M), the per-segment
# Polars baseline is OOM-killed from 10M, and the floor task holds the whole input in memory.
LARGE = 50_000_000
LARGE_SKIP = ("duckdb", "polars", "postgres", "incremental", "cli", "floor")

TARGETS = {
    "full_1m": 1.5,
    "full_10m": 10.0,
    "vs_duckdb_10m": 3.0,
    "vs_postgres_10m": 30.0,
    "incremental_share": 0.20,
    "validate_1000": 2.0,
    "rss_10m_gib": 6.0,
}


def _label(n: int) -> str:
    for unit, size in (("G", 1_000_000_000), ("M", 1_000_000), ("k", 1_000)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def _paths(data: Path, defs: Path):
    from pipelines.core.settings import Paths

    return Paths(defs=defs, data=data)


# --------------------------------------------------------------------------- data


def prepare_data(n: int, root: Path, defs: Path, *, changed: bool = True) -> dict:
    """Landing files and lake for n subscribers (cached); ingest time when done now.
    `changed`: also the second snapshot, for the incremental run."""
    from pipelines.lake.ingest import ingest_landing
    from pipelines.run.prepare import load_valid_project
    from pipelines.sample_data import write_landing
    from pipelines.sample_data.changes import write_changed_landing

    marker = root / ".prepared"
    recipe = json.dumps({"n": n, "seed": SEED, "t0": T0.isoformat(), "version": DATA_VERSION, "changed": changed})
    # Data with the second snapshot serves a run that does not need it: the full
    # refreshes evaluate at FULL_RUN, before that snapshot's time.
    with_changes = json.dumps({**json.loads(recipe), "changed": True})
    if marker.is_file() and marker.read_text() in {recipe, with_changes}:
        return {"cached": True}
    if root.exists():
        shutil.rmtree(root)
    paths = _paths(root, defs)
    started = time.perf_counter()
    write_landing(paths, as_of=T0.replace(tzinfo=UTC), n_subscribers=n, seed=SEED, fmt="parquet")
    if changed:
        write_changed_landing(paths, as_of=T0, changed_as_of=CHANGED, since=FULL_RUN, n_subscribers=n, share=0.01,
                              seed=SEED)
    generated = time.perf_counter() - started
    started = time.perf_counter()
    report = ingest_landing(paths, load_valid_project(paths).catalog)
    if report.rejected:
        raise SystemExit(f"ingest rejected {report.rejected}")
    ingested = time.perf_counter() - started
    marker.write_text(recipe)
    return {"cached": False, "generate_s": generated, "ingest_s": ingested}


def reset_state(data: Path) -> None:
    """Forget every published run (the lake stays)."""
    for name in ("published", "work", "audiences", "dagster_home"):
        shutil.rmtree(data / name, ignore_errors=True)
    for name in ("warehouse.duckdb", "warehouse.duckdb.wal", ".run.lock"):
        (data / name).unlink(missing_ok=True)


def clone_state(source: Path, target: Path) -> None:
    """A copy of a data folder: immutable files (lake, versions) hard-linked, the rest copied."""
    if target.exists():
        shutil.rmtree(target)

    def copy(src: str, dst: str) -> None:
        immutable = src.endswith((".parquet", ".arrow")) and ("/lake/" in src or "/versions/" in src)
        if immutable:
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=copy, ignore=shutil.ignore_patterns("work", "dagster_home"))


# --------------------------------------------------------------------------- child tasks


def _lake_inputs(paths, project, as_of):
    from pipelines.lake.snapshots import read_events, read_snapshot, snapshot_at_or_before

    info = snapshot_at_or_before(paths, as_of)
    return read_snapshot(info, project.catalog), read_events(paths, project.catalog, as_of)


def _timed_run(paths, params) -> tuple:
    """One run through the functions the refresh job's assets call (pipelines/run/),
    without Dagster: the run's context and each step's wall time in seconds."""
    from pipelines.run import checks
    from pipelines.run.execute import Run
    from pipelines.run.prepare import prepare

    timings: dict[str, float] = {}
    started = time.perf_counter()
    prepare(paths, params)
    timings["prepare"] = time.perf_counter() - started
    run = Run(paths, params.run_id)
    started = time.perf_counter()
    evaluation = run.evaluate()
    timings["evaluate"] = time.perf_counter() - started
    started = time.perf_counter()
    history = run.history(evaluation.flags)
    timings["history"] = time.perf_counter() - started
    started = time.perf_counter()
    run.recipients(evaluation.flags)
    timings["recipients"] = time.perf_counter() - started
    started = time.perf_counter()
    # The blocking check the job runs before it publishes (defs/assets.py).
    if not checks.suppression(run.workspace.recipients_file, run.subscribers, run.suppressions).passed:
        raise SystemExit("the suppression check failed: nothing was published")
    timings["check"] = time.perf_counter() - started
    started = time.perf_counter()
    run.publish(evaluation, history)
    timings["publish"] = time.perf_counter() - started
    return run.ctx, timings


def task_refresh(args) -> dict:
    """Two full refreshes (first run, steady state) through the library steps."""
    from pipelines.run.params import RunParams

    paths = _paths(Path(args.data), Path(args.defs))
    out = {}
    for name, as_of in (("first", FIRST_RUN), ("full", FULL_RUN)):
        params = RunParams(run_id=f"bench-{name}", as_of=as_of, started_at=as_of, engine=args.engine, full=True)
        _ctx, timings = _timed_run(paths, params)
        out[name] = timings
    return out


def task_evaluate(args) -> dict:
    """The engine's evaluation of the steady-state run, alone (flags written for comparison)."""
    from pipelines.lake.snapshots import snapshot_at_or_before
    from pipelines.publish.history_files import write_flags
    from pipelines.run.evaluate import evaluate_flags
    from pipelines.run.params import RunContext, RunParams
    from pipelines.run.prepare import load_valid_project

    paths = _paths(Path(args.data), Path(args.defs))
    project = load_valid_project(paths)
    info = snapshot_at_or_before(paths, FULL_RUN)
    ctx = RunContext(params=RunParams(run_id="bench-eval", as_of=FULL_RUN, started_at=FULL_RUN, engine=args.engine,
                                      full=True), snapshot_file=str(info.file))
    started = time.perf_counter()
    flags = evaluate_flags(paths, ctx, project)
    seconds = time.perf_counter() - started
    write_flags(flags, Path(args.out))
    return {"evaluate": seconds}


def _waves(project):
    from pipelines.segments.plan import evaluation_waves

    return [key for wave in evaluation_waves(project) for key in wave]


def _insert_members(key: str, query) -> str:
    """INSERT INTO segment_membership SELECT '<key>', subscriber_id FROM (<query>) AS q (as an AST)."""
    from sqlglot import exp

    select = exp.select(exp.Literal.string(key), exp.column("subscriber_id")).from_(
        exp.Subquery(this=query, alias=exp.TableAlias(this=exp.to_identifier("q"))))
    return exp.insert(select, "segment_membership")


def task_baseline_duckdb(args) -> dict:
    """(a): the compiled per-segment SQL, one statement at a time, in DuckDB."""
    import duckdb

    from pipelines.run.prepare import load_valid_project
    from pipelines.segments.to_sql import segment_query

    paths = _paths(Path(args.data), Path(args.defs))
    project = load_valid_project(paths)
    subscribers, events = _lake_inputs(paths, project, FULL_RUN)
    con = duckdb.connect()
    con.register("subscribers_arrow", subscribers)
    con.register("events_arrow", events)
    con.execute("CREATE TABLE subscribers AS SELECT * FROM subscribers_arrow")
    con.execute("CREATE TABLE events AS SELECT * FROM events_arrow")
    con.unregister("subscribers_arrow")
    con.unregister("events_arrow")
    del subscribers, events
    con.execute("CREATE TABLE segment_membership (segment VARCHAR, subscriber_id VARCHAR)")
    started = time.perf_counter()
    for key in _waves(project):
        statement = _insert_members(key, segment_query(project, key, FULL_RUN))
        con.execute(statement.sql(dialect="duckdb"))
    seconds = time.perf_counter() - started
    con.execute(f"COPY segment_membership TO '{_sql_path(args.out)}' (FORMAT parquet)")
    return {"evaluate": seconds}


def _sql_path(path) -> str:
    return str(path).replace("'", "''")


def task_baseline_polars(args) -> dict:
    """(b): one lazy Polars query per segment, each with its own event aggregation."""
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipelines.run.prepare import load_valid_project
    from pipelines.segments.plan import distinct_event_aggregates
    from pipelines.segments.to_polars import event_condition, segment_predicate

    paths = _paths(Path(args.data), Path(args.defs))
    project = load_valid_project(paths)
    subscribers, events = _lake_inputs(paths, project, FULL_RUN)
    subs = pl.from_arrow(subscribers)
    evs = pl.from_arrow(events)
    del subscribers, events
    catalog = project.catalog
    as_of = pl.lit(FULL_RUN, dtype=pl.Datetime("us"))
    members: dict[str, pl.Series] = {}
    started = time.perf_counter()
    for key in _waves(project):
        segment = project.segments[key]
        aggregates = distinct_event_aggregates([segment])
        frame = subs.lazy()
        if aggregates:
            counts = (
                evs.lazy()
                .filter((pl.col("occurred_at") <= as_of) & pl.col("event").is_in(sorted({f.event for f in
                                                                                         aggregates.values()})))
                .group_by("subscriber_id")
                .agg(event_condition(f, catalog, FULL_RUN).sum().alias(f"n_{k}") for k, f in aggregates.items())
            )
            frame = frame.join(counts, on="subscriber_id", how="left").with_columns(
                pl.col(f"n_{k}").fill_null(0) for k in aggregates)
        predicate = segment_predicate(
            segment, catalog, FULL_RUN,
            lambda f: pl.col(f"n_{f.aggregate_key()}"),
            lambda ref: pl.col("subscriber_id").is_in(members[ref].implode()),
        )
        members[key] = frame.filter(predicate).select("subscriber_id").collect().get_column("subscriber_id")
    seconds = time.perf_counter() - started
    keys = sorted(members)
    table = pa.table({
        "segment": pa.array([k for k in keys for _ in range(len(members[k]))], pa.string()),
        "subscriber_id": pa.concat_arrays([members[k].to_arrow().cast(pa.string()) for k in keys])
        if keys else pa.array([], pa.string()),
    })
    pq.write_table(table, args.out)
    return {"evaluate": seconds}


def task_postgres(args) -> dict:
    """(c): PostgreSQL, one query per segment through psql (skipped without PostgreSQL)."""
    import postgres

    from pipelines.run.prepare import load_valid_project

    if postgres.find_bin() is None:
        return {"skipped": "PostgreSQL not installed (Debian package `postgresql`)"}
    paths = _paths(Path(args.data), Path(args.defs))
    project = load_valid_project(paths)
    subscribers, events = _lake_inputs(paths, project, FULL_RUN)
    with postgres.maybe_cluster() as pg:
        started = time.perf_counter()
        pg.load("subscribers", subscribers, project.catalog.subscriber)
        pg.load("events", events, project.catalog.event)
        del subscribers, events
        pg.psql("CREATE TABLE segment_membership (segment TEXT, subscriber_id TEXT);\n"
                "CREATE INDEX ON events (subscriber_id);\n"
                "CREATE INDEX ON segment_membership (segment, subscriber_id);\n"
                "ANALYZE subscribers; ANALYZE events;\n")
        loaded = time.perf_counter() - started
        script = ";\n".join(
            postgres.render(_insert_members(key, _pg_query(project, key)))
            for key in _waves(project)) + ";\n"
        started = time.perf_counter()
        pg.psql(script)
        seconds = time.perf_counter() - started
        version = pg.psql("SELECT version();", values_only=True).strip()
        export = pg.scratch("membership.csv")
        pg.psql(f"COPY segment_membership TO '{_sql_path(export)}' WITH (FORMAT csv);")
        shutil.move(export, args.out)  # a rename on the same disk: no second copy of a GB-sized file
    return {"evaluate": seconds, "load": loaded, "version": version.split(",")[0]}


def _pg_query(project, key):
    from pipelines.segments.to_sql import segment_query

    return segment_query(project, key, FULL_RUN)


def task_validate(args) -> dict:
    """Validate (load every file) and compile (every segment's SQL and the run's plan) N definitions."""
    from pipelines.engine import compiled_sql_by_segment
    from pipelines.segments.loader import load_project
    from pipelines.segments.plan import build_plan

    started = time.perf_counter()
    project, problems = load_project(args.defs)
    loaded = time.perf_counter() - started
    if problems:
        raise SystemExit(f"{len(problems)} problem(s), first: {problems[0]}")
    compiled = compiled_sql_by_segment(project, FULL_RUN)
    build_plan(project, FULL_RUN)
    total = time.perf_counter() - started
    return {"validate": loaded, "compile": total - loaded, "total": total, "segments": len(compiled)}


def task_incremental(args) -> dict:
    """The run at T0+3h, incremental (default) or --full, on the state left by the full refresh."""
    from pipelines.run.params import RunParams

    paths = _paths(Path(args.data), Path(args.defs))
    params = RunParams(run_id="bench-hourly", as_of=CHANGED, started_at=CHANGED, engine=args.engine,
                       full=args.full)
    ctx, timings = _timed_run(paths, params)
    return {**timings, "mode": ctx.mode}


def task_floor(args) -> dict:
    """What any refresh of these inputs must at least do, timed alone: read the run's
    inputs into Arrow, and write the published membership relation (the rows of
    the last version's segment_membership, with the writer settings a run uses)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from pipelines.lake.snapshots import read_events, read_snapshot, snapshot_at_or_before
    from pipelines.publish.flag_history import OPEN_STAYS_WRITE_OPTIONS
    from pipelines.publish.membership_files import PartsWriter, membership_files
    from pipelines.run.prepare import load_valid_project
    from pipelines.segments.plan import build_plan

    paths = _paths(Path(args.data), Path(args.defs))
    project = load_valid_project(paths)
    plan = build_plan(project, FULL_RUN)
    started = time.perf_counter()  # the columns the segments use, as a run reads them
    subscribers = read_snapshot(snapshot_at_or_before(paths, FULL_RUN), project.catalog,
                                sorted({"subscriber_id", *plan.subscriber_fields}))
    events = read_events(paths, project.catalog, FULL_RUN, sorted({"subscriber_id", *plan.event_fields}))
    read = time.perf_counter() - started
    rows = subscribers.num_rows + events.num_rows
    del subscribers, events
    membership = pa.concat_tables(pq.read_table(f) for f in membership_files(Path(args.out)))
    keys = pa.table({"segment": membership.column("segment").cast(pa.string()),
                     "subscriber_id": membership.column("subscriber_id")})  # the order a run writes
    membership = membership.take(pc.sort_indices(keys, [("segment", "ascending"), ("subscriber_id", "ascending")]))
    membership = membership.combine_chunks()
    target = Path(args.out).with_name("floor-membership.parquet")
    started = time.perf_counter()  # as a run writes it: row groups dealt to files written in parallel
    writer = PartsWriter(target, membership.schema, **OPEN_STAYS_WRITE_OPTIONS)
    for group in membership.to_batches(max_chunksize=1 << 20):
        writer.write(pa.Table.from_batches([group]))
    writer.close()
    write = time.perf_counter() - started
    files = membership_files(target)
    for file in files:
        file.unlink()
    return {"read_inputs": read, "input_rows": rows, "write_membership": write, "membership_rows": membership.num_rows,
            "files": len(files)}


TASKS = {
    "floor": task_floor,
    "refresh": task_refresh,
    "evaluate": task_evaluate,
    "baseline-duckdb": task_baseline_duckdb,
    "baseline-polars": task_baseline_polars,
    "postgres": task_postgres,
    "validate": task_validate,
    "incremental": task_incremental,
    "compare": lambda args: task_compare(args),
    "compare-published": lambda args: task_compare_published(args),
    "compare-flags": lambda args: task_compare_flags(args),
}


def peak_rss_bytes() -> int:
    """This process's peak resident set: VmHWM (Linux; it starts afresh at exec, where
    `ru_maxrss` may carry the forking parent's peak), else `ru_maxrss`."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def task_compare(args) -> dict:
    """Whether two membership files (Parquet or CSV) hold the same pairs."""
    equal, rows, differ = same_membership(Path(args.data), Path(args.out))
    return {"equal": equal, "rows": rows, "differ": differ}


def task_compare_published(args) -> dict:
    return {"differing": same_published(Path(args.data), Path(args.out))}


def task_compare_flags(args) -> dict:
    return {"equal": flags_equal(Path(args.data), Path(args.out))}


def child_main(args) -> None:
    result = TASKS[args.child](args)
    result["peak_rss_bytes"] = peak_rss_bytes()
    print("RESULT " + json.dumps(result, default=str))


def run_child(task: str, fatal: bool = True, **options) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", task]
    for key, value in options.items():
        if value is True:
            command.append(f"--{key.replace('_', '-')}")
        elif value not in (None, False):
            command += [f"--{key.replace('_', '-')}", str(value)]
    started = time.perf_counter()
    process = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if process.returncode:
        if not fatal:  # a baseline that cannot finish is a result, not the end of the benchmark
            why = "killed, out of memory" if process.returncode == -9 else f"exit code {process.returncode}"
            last = [x for x in process.stderr.strip().splitlines() if x.strip()][-1:]
            if last:  # the error's last line, so the report says why (a full disk, say)
                why += f": {last[0].strip()[:300]}"
            print(f"  {task:16s} failed after {wall:7.1f} s ({why})", flush=True)
            return {"skipped": f"did not finish: {why} after {wall:,.0f} s", "wall_s": wall}
        raise SystemExit(f"benchmark task {task} failed:\n{process.stdout[-3000:]}\n{process.stderr[-5000:]}")
    line = [x for x in process.stdout.splitlines() if x.startswith("RESULT ")][-1]
    result = json.loads(line[len("RESULT "):])
    result["wall_s"] = wall
    if not task.startswith("compare"):
        print(f"  {task:16s} done in {wall:7.1f} s", flush=True)
    return result


# --------------------------------------------------------------------------- checks


# The comparisons' DuckDB memory; beyond it EXCEPT ALL spills to the scratch folder.
COMPARE_MEMORY_LIMIT = "6GB"


def _membership_source(path: Path) -> str:
    p = _sql_path(path)
    if path.suffix == ".csv":
        return f"read_csv('{p}', header=false, columns={{'segment': 'VARCHAR', 'subscriber_id': 'VARCHAR'}})"
    from pipelines.publish.membership_files import membership_files

    # A published segment_membership may be several files written in parallel.
    return "read_parquet([" + ", ".join(f"'{_sql_path(f)}'" for f in membership_files(path)) + "])"


def _comparison_connection(scratch: Path):
    """DuckDB for the checks: a memory limit and a spill folder in the bench's scratch,
    so comparing 129M-row relations neither takes the machine's memory nor leaves
    `.tmp/` in the current directory."""
    from pipelines.core.duck import bounded_connection

    return bounded_connection(COMPARE_MEMORY_LIMIT, scratch)


def _rows_differing(con, a: str, b: str) -> int:
    """Rows of query `a` not in `b` plus rows of `b` not in `a` (as multisets).

    First a cheap check, in one streaming pass over each side: the row count and an
    order-independent sum of 64-bit row hashes. Only when they differ does EXCEPT ALL
    (which has to hold or spill both sides) count the differing rows."""
    def fingerprint(query: str):
        return con.execute(f"SELECT count(*), coalesce(sum(hash(q)::HUGEINT), 0) FROM ({query}) q").fetchall()[0]

    if fingerprint(a) == fingerprint(b):
        return 0
    return con.execute(f"SELECT (SELECT count(*) FROM ({a} EXCEPT ALL {b})) + "
                       f"(SELECT count(*) FROM ({b} EXCEPT ALL {a}))").fetchall()[0][0]


def same_membership(ours: Path, theirs: Path) -> tuple[bool, int, int]:
    """(equal, rows of ours, rows only on one side), compared by DuckDB without loading into Python."""
    con = _comparison_connection(Path(theirs).parent / "compare-tmp")
    a = f"SELECT segment, subscriber_id FROM {_membership_source(ours)}"
    b = f"SELECT segment, subscriber_id FROM {_membership_source(theirs)}"
    rows = con.execute(f"SELECT count(*) FROM ({a})").fetchall()[0][0]
    differ = _rows_differing(con, a, b)
    return differ == 0, rows, differ


def same_published(a: Path, b: Path) -> list[str]:
    """Relations whose content differs between two data folders' warehouses."""
    differing = []
    queries = {
        "segment_membership": "SELECT segment, subscriber_id FROM segment_membership",
        "segment_membership_history": "SELECT * FROM segment_membership_history",
        "membership_changes": "SELECT * FROM membership_changes",
        "segment_sizes": "SELECT * FROM segment_sizes",
        "recipients": "SELECT * EXCLUDE (run_id) FROM recipients",
    }
    con = _comparison_connection(Path(b).parent / "compare-tmp")
    con.execute(f"ATTACH '{_sql_path(a / 'warehouse.duckdb')}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{_sql_path(b / 'warehouse.duckdb')}' AS b (READ_ONLY)")
    for name, query in queries.items():
        n = _rows_differing(con, query.replace(f"FROM {name}", f"FROM a.{name}"),
                            query.replace(f"FROM {name}", f"FROM b.{name}"))
        if n:
            differing.append(f"{name} ({n:,} rows)")
    return differing


def flags_equal(a: Path, b: Path) -> bool:
    import pyarrow.feather as feather

    return feather.read_table(str(a)).equals(feather.read_table(str(b)))


# --------------------------------------------------------------------------- report


def machine() -> dict:
    info = {"cores": os.cpu_count(), "python": platform.python_version(), "os": platform.platform()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu"] = platform.processor() or "unknown"
    try:
        kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal")))
        info["ram_gib"] = round(kib / 2**20, 1)
    except (OSError, StopIteration):
        info["ram_gib"] = None
    for package in ("duckdb", "polars", "pyarrow", "sqlglot", "dagster", "numpy"):
        try:
            info[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            info[package] = "-"
    info["load_before"] = os.getloadavg()
    try:  # which code was measured
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        info["commit"] = commit + (" (with uncommitted changes)" if dirty else "")
        info["commit_short"] = commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        info["commit"] = "unknown"
    return info


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:,.2f} s"


def _x(a: float | None, b: float | None) -> str:
    return "-" if not a or not b else f"{a / b:,.1f}x"


def _gib(b: int | None) -> str:
    return "-" if b is None else f"{b / 2**30:,.2f} GiB"


def report(size: str, n: int, info: dict, data: dict, results: dict, checks: list[str], members: int) -> str:
    refresh = results["refresh"]
    first, full = refresh["first"], refresh["full"]
    ours_full = sum(full[k] for k in ("evaluate", "history", "recipients", "check", "publish"))
    ours_first = sum(first[k] for k in ("evaluate", "history", "recipients", "check", "publish"))
    ours_eval = full["evaluate"]
    duck = results.get("baseline-duckdb", {}).get("evaluate")
    polars_base = results.get("baseline-polars", {}).get("evaluate")
    pg = results.get("postgres", {})
    pg_eval = pg.get("evaluate")
    inc = results.get("incremental", {})
    inc_full = results.get("incremental-full", {})
    inc_total = sum(inc.get(k, 0) for k in ("evaluate", "history", "recipients", "check", "publish")) if inc else None
    inc_full_total = sum(inc_full.get(k, 0) for k in ("evaluate", "history", "recipients", "check", "publish")) \
        if inc_full else None
    val = results.get("validate", {})
    lines = [
        f"# Benchmark: {size} subscribers x {results['definitions']} segments ({date.today().isoformat()})",
        "",
        f"Machine: {info['cores']} cores, {info['ram_gib']} GiB RAM, {info['cpu']}; {info['os']}.",
        f"Versions: Python {info['python']}, DuckDB {info['duckdb']}, Polars {info['polars']}, pyarrow "
        f"{info['pyarrow']}, sqlglot {info['sqlglot']}, Dagster {info['dagster']}, numpy {info['numpy']}"
        + (f", {pg['version']}" if pg.get("version") else "") + ".",
        f"Code: commit {info.get('commit', 'unknown')}.",
        f"Load average before / after: {info['load_before'][0]:.1f} / {os.getloadavg()[0]:.1f} "
        "(the machine is shared: compare the ratios, measured in this one run).",
        "",
        f"Data: {n:,} subscribers, events as generated by `pipelines.sample_data` (2 per subscriber), "
        f"{members:,} memberships at T0+2h; "
        + ("cached." if data.get("cached") else
           f"generated in {data['generate_s']:.0f} s, ingested in {data['ingest_s']:.0f} s (not timed below)."),
        "",
        "| workload | time | vs ours | peak RSS |",
        "|---|---:|---:|---:|",
        f"| **ours, full refresh** (evaluate + history + recipients + publish, steady state, `--full`) | "
        f"{_s(ours_full)} | 1.0x | {_gib(refresh['peak_rss_bytes'])} |",
        f"| &nbsp;&nbsp;evaluate / history / recipients / publish | {full['evaluate']:.2f} / {full['history']:.2f} / "
        f"{full['recipients']:.2f} / {full['publish']:.2f} s | | |",
        f"| ours, first run (everyone enters) | {_s(ours_first)} | | |",
        f"| ours, evaluate only (DuckDB engine) | {_s(ours_eval)} | | |",
    ]
    if "evaluate-polars" in results:
        p = results["evaluate-polars"]
        lines.append(f"| ours, evaluate only (Polars engine) | {_s(p['evaluate'])} | | {_gib(p['peak_rss_bytes'])} |")
    for name, label, value in (("baseline-duckdb", "(a) DuckDB, one compiled query per segment", duck),
                               ("baseline-polars", "(b) Polars, one query per segment", polars_base),
                               ("postgres", "(c) PostgreSQL, one query per segment", pg_eval)):
        if value is not None:
            lines.append(f"| {label} | {_s(value)} | {_x(value, ours_full)} slower than our full refresh, "
                         f"{_x(value, ours_eval)} than our evaluate | {_gib(results[name].get('peak_rss_bytes'))} |")
        elif name in results:
            lines.append(f"| {label} | skipped: {results[name].get('skipped')} | | |")
    if inc:
        lines.append(f"| hourly incremental run, 1% changed ({inc['mode']}) | {_s(inc_total)} | "
                     f"{inc_total / inc_full_total:.0%} of a full run of the same inputs ({_s(inc_full_total)}) | "
                     f"{_gib(inc.get('peak_rss_bytes'))} |")
        lines.append(f"| &nbsp;&nbsp;incremental evaluate / history / recipients / publish | {inc['evaluate']:.2f} / "
                     f"{inc['history']:.2f} / {inc['recipients']:.2f} / {inc['publish']:.2f} s | "
                     f"full: {inc_full['evaluate']:.2f} / {inc_full['history']:.2f} / {inc_full['recipients']:.2f} / "
                     f"{inc_full['publish']:.2f} s | |")
    if val:
        lines.append(f"| validate + compile {val['segments']:,} definitions (median of 3: "
                     f"{', '.join(f'{x:.2f}' for x in val.get('runs', [val['total']]))} s) | {_s(val['total'])} "
                     f"(validate {val['validate']:.2f}, compile {val['compile']:.2f}) | | |")
    floor = results.get("floor")
    if floor:
        lines.append(f"| floor: read the columns the segments use into Arrow ({floor['input_rows']:,} rows) | "
                     f"{_s(floor['read_inputs'])} | | |")
        lines.append(f"| floor: write the published membership relation alone ({floor['membership_rows']:,} rows, "
                     f"{floor.get('files', 1)} Parquet file(s) written in parallel, as a run does) | "
                     f"{_s(floor['write_membership'])} | | |")
    if "cli" in results:
        lines.append(f"| `segments run --full` (one run, Dagster and process start included) | "
                     f"{_s(results['cli']['wall_s'])} | | |")
    lines += ["", "Checks: " + ("; ".join(checks) if checks else "none"), ""]
    if results.get("skip"):
        lines += [f"Not measured in this run (`--skip`): {', '.join(results['skip'])}.", ""]
    targets = [
        ("full refresh 1M x 100 <= 1.5 s", n == 1_000_000, ours_full, TARGETS["full_1m"]),
        ("full refresh 10M x 100 <= 10 s", n == 10_000_000, ours_full, TARGETS["full_10m"]),
    ]
    lines.append("Targets (`size` dependent; a ratio is measured in this run):")
    lines.append("")
    for label, applies, value, limit in targets:
        if applies:
            lines.append(f"- {label}: {_s(value)} -> {'met' if value <= limit else 'NOT met'}")
    if duck:
        lines.append(f"- full refresh >= 3x faster than (a): {_x(duck, ours_full)} -> "
                     f"{'met' if duck / ours_full >= 3 else 'NOT met'}")
    if pg_eval:
        lines.append(f"- >= 30x faster than (c) PostgreSQL: {_x(pg_eval, ours_full)} (full refresh), "
                     f"{_x(pg_eval, ours_eval)} (evaluate) -> {'met' if pg_eval / ours_full >= 30 else 'NOT met'}")
    if inc:
        share = inc_total / inc_full_total
        lines.append(f"- incremental <= 20% of a full refresh: {share:.0%} -> {'met' if share <= 0.2 else 'NOT met'}")
    if val:
        lines.append(f"- validate + compile 1,000 definitions <= 2 s: {_s(val['total'])} -> "
                     f"{'met' if val['total'] <= 2 else 'NOT met'}")
    if n == 10_000_000:
        peak = refresh["peak_rss_bytes"] / 2**30
        lines.append(f"- peak RSS 10M x 100 <= 6 GiB: {peak:.2f} GiB -> {'met' if peak <= 6 else 'NOT met'}")
    if n >= 100_000_000:
        peak = refresh["peak_rss_bytes"] / 2**30
        lines.append(f"- {size} x 100 completes within the machine's memory ({info['ram_gib']} GiB): both refreshes "
                     f"completed, peak RSS {peak:.2f} GiB -> met")
    if floor:
        lines += ["", "What bounds the figures (measured above, same run):", ""]
        floor_s = floor["read_inputs"] + floor["write_membership"]
        lines.append(f"- A full refresh publishes the {floor['membership_rows']:,}-row membership relation: reading "
                     f"the inputs ({_s(floor['read_inputs'])}) and writing it ({_s(floor['write_membership'])})"
                     f" take {_s(floor_s)} before any evaluation, history, recipients or audience files "
                     f"({floor_s / ours_full:.0%} of our full refresh).")
        limit = {1_000_000: TARGETS["full_1m"], 10_000_000: TARGETS["full_10m"]}.get(n)
        if limit is not None and floor_s > limit:
            lines.append(f"- That floor alone is above the {_s(limit)} target for a full refresh at this size, on "
                         "this machine: the target cannot be met while every run writes the whole relation.")
        if duck:
            lines.append(f"- The baselines only evaluate (no history, recipients or publishing): evaluation against "
                         f"evaluation, ours is {_x(duck, ours_eval)} faster than (a)"
                         + (f" and {_x(pg_eval, ours_eval)} faster than (c)" if pg_eval else "") + ".")
        if inc:
            inc_fixed = inc.get("history", 0) + inc.get("publish", 0)
            lines.append(f"- The hourly run evaluates only what changed ({inc['mode']}), but history and publish "
                         f"still write the whole membership relation and recipients ({_s(inc_fixed)} of its "
                         f"{_s(inc_total)}); publishing per-run change files instead is the next step.")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("1M"))
    parser.add_argument("--definitions", type=int, default=100)
    parser.add_argument("--engine", default="duckdb")
    parser.add_argument("--data-root", type=Path, default=BENCH / "data")
    parser.add_argument("--results", type=Path, default=BENCH / "results")
    parser.add_argument("--skip", default=None,
                        help="comma-separated: duckdb,polars,postgres,incremental,cli,validate,floor "
                             f"(default: none; from {LARGE:,} subscribers: {','.join(LARGE_SKIP)})")
    # child-process arguments
    parser.add_argument("--child", choices=sorted(TASKS), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--defs", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args)
        return 0

    n, size = args.size, _label(args.size)
    if args.skip is None:
        args.skip = ",".join(LARGE_SKIP) if n >= LARGE else ""
        if n >= LARGE:
            print(f"  at {size}, skipping {args.skip} (pass --skip '' to run them)", flush=True)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    root = (args.data_root / size).absolute()
    data = root / "data"
    defs = write_definitions(root / f"defs-{args.definitions}", args.definitions)
    info = machine()
    print(f"benchmark {size} x {args.definitions} segments in {root}", flush=True)
    prepared = prepare_data(n, data, defs, changed="incremental" not in skip)
    print(f"  data {'cached' if prepared.get('cached') else 'generated and ingested'}", flush=True)
    reset_state(data)
    scratch = root / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)

    results: dict = {"definitions": args.definitions, "skip": sorted(skip)}
    common = {"data": data, "defs": defs, "engine": args.engine}
    results["refresh"] = run_child("refresh", **common)
    from pipelines.core.settings import Paths
    from pipelines.publish.state import current_state

    published = current_state(Paths(defs=defs, data=data))
    ours = published.version_dir / "segment_membership.parquet"
    ours_flags = published.version_dir / "membership_flags.arrow"
    if "floor" not in skip:
        results["floor"] = run_child("floor", data=data, defs=defs, out=ours)
    checks = []
    for engine in ("polars",) if "polars" not in skip and args.engine != "polars" else ():
        target = scratch / f"flags-{engine}.arrow"
        results[f"evaluate-{engine}"] = run_child("evaluate", data=data, defs=defs, engine=engine, out=target)
        if not run_child("compare-flags", data=ours_flags, out=target)["equal"]:
            raise SystemExit(f"the {engine} engine's flags differ from the {args.engine} engine's")
        checks.append(f"{engine} engine == {args.engine} engine")
    for task, key, suffix in (("baseline-duckdb", "duckdb", ".parquet"), ("baseline-polars", "polars", ".parquet"),
                              ("postgres", "postgres", ".csv")):
        if key in skip:
            continue
        target = scratch / f"{task}{suffix}"
        results[task] = run_child(task, fatal=False, data=data, defs=defs, out=target)
        if results[task].get("skipped"):
            print(f"  {task}: {results[task]['skipped']}", flush=True)
            continue
        compared = run_child("compare", data=ours, out=target)
        if not compared["equal"]:
            raise SystemExit(f"{task}: membership differs from ours in {compared['differ']:,} rows")
        checks.append(f"{task} membership == ours ({compared['rows']:,} rows)")
    if "validate" not in skip:
        defs_1000 = write_definitions(root / "defs-1000", 1000)
        # A 1-2 s figure on a shared machine: the median of three runs (all three reported).
        runs = sorted((run_child("validate", defs=defs_1000) for _ in range(3)), key=lambda r: r["total"])
        results["validate"] = {**runs[1], "runs": [r["total"] for r in runs]}
    if "incremental" not in skip:
        copy = root / "data-full"
        clone_state(data, copy)
        results["incremental"] = run_child("incremental", data=data, defs=defs, engine=args.engine)
        results["incremental-full"] = run_child("incremental", data=copy, defs=defs, engine=args.engine, full=True)
        differing = run_child("compare-published", data=data, out=copy)["differing"]
        if differing:
            raise SystemExit(f"incremental and full runs published different tables: {', '.join(differing)}")
        checks.append("incremental run == full run (membership, history, changes, sizes, recipients)")
        shutil.rmtree(copy, ignore_errors=True)
    if "cli" not in skip:
        started = time.perf_counter()
        as_of = (CHANGED + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        subprocess.run([str(Path(sys.executable).parent / "segments"), "run", "--data", str(data), "--defs", str(defs),
                        "--as-of", as_of, "--full"], check=True, capture_output=True,
                       env={**os.environ, "DAGSTER_HOME": str(data / "dagster_home")})
        results["cli"] = {"wall_s": time.perf_counter() - started}
    import pyarrow.parquet as pq

    from pipelines.publish.membership_files import membership_files

    members = sum(pq.read_metadata(f).num_rows for f in membership_files(ours))  # every file of the relation
    text = report(size, n, info, prepared, results, checks, members)
    args.results.mkdir(parents=True, exist_ok=True)
    # One report per size, day and commit: a later run of other code never overwrites it.
    stem = "-".join(p for p in (size, date.today().isoformat(), info.get("commit_short")) if p)
    target = args.results / f"{stem}.md"
    target.write_text(text)
    (args.results / f"{stem}.json").write_text(json.dumps(results, indent=1, default=str))
    print()
    print(text)
    print(f"written to {target}")
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
