"""What a user waits for: a whole `segments run`, start to exit, against a naive SQL script.

    python bench/whole_run.py --size 1M        # part of `make bench` (SIZE=10M make bench)

Both sides are child processes timed from start to exit (process start, imports,
Dagster and ingest included on our side); peak RSS is each child's own
(`wait4`). Two workloads, measured in this one run on this one machine:

- first run: the Parquet landing files of T0 (a snapshot and an events export)
  in an empty data folder; ours: `segments run --as-of T0+1h`;
- hourly run: a second snapshot at T0+3h (about 1% of subscribers changed, a
  few gone, a few new) and a small events export land beside them; ours:
  `segments run --as-of T0+3h` on the first run's folder.

The naive baseline is the script a data engineer would write first: load the
snapshot in force and every events export into DuckDB tables, then one
`INSERT INTO segment_membership SELECT ...` per segment with the project's own
compiled SQL, in dependency order, then write the union to Parquet. It ingests
nothing, keeps no history, builds no audiences and publishes nothing; it is the
floor a pipeline must beat to be worth running. Both must give the same
membership (checked). The report goes to bench/results/whole-<size>-<date>-<commit>.md.
"""

from __future__ import annotations

import argparse
import json
import os
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
from run import SEED, _label, machine  # noqa: E402

T0 = datetime(2026, 11, 1, tzinfo=UTC)
FIRST_RUN = T0 + timedelta(hours=1)
HOURLY_RUN = T0 + timedelta(hours=3)  # the second snapshot's time, and the hourly run's clock

# Issue targets: ours at least this many times faster than the naive script.
TARGETS = {"first": 2.0, "hourly": 4.0}


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def landing_sets(n: int, root: Path) -> tuple[list[Path], list[Path]]:
    """(T0 landing files, T0+3h landing files) for n subscribers, cached under root."""
    from pipelines.core.settings import Paths
    from pipelines.sample_data import write_landing
    from pipelines.sample_data.changes import write_changed_landing

    first, hourly = root / "first", root / "hourly"
    marker = root / ".ready"
    recipe = json.dumps({"n": n, "seed": SEED, "t0": T0.isoformat(), "version": 1})
    if not (marker.is_file() and marker.read_text() == recipe):
        shutil.rmtree(root, ignore_errors=True)
        write_landing(Paths(defs=root, data=first), as_of=T0, n_subscribers=n, seed=SEED, fmt="parquet")
        write_changed_landing(Paths(defs=root, data=hourly), as_of=T0.replace(tzinfo=None),
                              changed_as_of=HOURLY_RUN.replace(tzinfo=None), since=FIRST_RUN.replace(tzinfo=None),
                              n_subscribers=n, share=0.01, seed=SEED)
        marker.write_text(recipe)
    return sorted(first.glob("landing/*/*")), sorted(hourly.glob("landing/*/*"))


def land(files: list[Path], data: Path) -> None:
    """Copy landing files into DATA/landing/<kind>/ (as an export job would)."""
    for file in files:
        target = data / "landing" / file.parent.name / file.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, target)


def naive_script(defs: Path, snapshot: Path, events: list[Path], as_of: datetime, out: Path) -> str:
    """The naive baseline as one DuckDB SQL script (built as sqlglot ASTs, rendered once)."""
    from sqlglot import exp

    from pipelines.core.settings import Paths
    from pipelines.run.prepare import load_valid_project
    from pipelines.segments.plan import evaluation_waves
    from pipelines.segments.to_sql import segment_query

    project = load_valid_project(Paths(defs=defs, data=out.parent))

    def read_parquet(paths: list[Path]) -> exp.Expression:
        return exp.func("read_parquet", exp.Array(expressions=[exp.Literal.string(str(p)) for p in paths]))

    statements: list[exp.Expression] = [
        exp.Create(this=exp.to_table("subscribers"), kind="TABLE",
                   expression=exp.select("*").from_(read_parquet([snapshot]))),
        exp.Create(this=exp.to_table("events"), kind="TABLE",
                   expression=exp.select("*").from_(read_parquet(events))),
    ]
    script = [s.sql(dialect="duckdb") for s in statements]
    script.append("CREATE TABLE segment_membership (segment VARCHAR, subscriber_id VARCHAR)")
    for key in (key for wave in evaluation_waves(project) for key in wave):
        query = segment_query(project, key, as_of.replace(tzinfo=None))
        select = exp.select(exp.Literal.string(key), exp.column("subscriber_id")).from_(
            exp.Subquery(this=query, alias=exp.TableAlias(this=exp.to_identifier("q"))))
        script.append(exp.insert(select, "segment_membership").sql(dialect="duckdb"))
    copy = exp.Copy(this=exp.to_table("segment_membership"), kind=False, files=[exp.Literal.string(str(out))],
                    params=[exp.CopyParameter(this=exp.var("FORMAT"), expression=exp.var("parquet"))])
    script.append(copy.sql(dialect="duckdb"))
    return ";\n".join(script) + ";\n"


NAIVE_RUNNER = "import duckdb, sys; duckdb.connect(sys.argv[2]).execute(open(sys.argv[1]).read())"


def run_measured(command: list[str], env: dict[str, str] | None = None) -> dict:
    """Wall time start to exit and the child's own peak RSS, from wait4."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    stderr = child.stderr.read() if child.stderr else b""
    _pid, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"{' '.join(command[:4])} ... failed ({child.returncode}):\n{stderr.decode()[-3000:]}")
    return {"wall_s": wall, "peak_rss_bytes": usage.ru_maxrss * 1024}


def same_membership(warehouse: Path, naive: Path) -> tuple[bool, int]:
    """Whether the published `segment_membership` equals the naive script's output."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("ATTACH ? AS w (READ_ONLY)", [str(warehouse)])
        con.execute("CREATE TEMP TABLE naive AS SELECT segment, subscriber_id FROM read_parquet(?)", [str(naive)])
        ours = "SELECT segment, subscriber_id FROM w.segment_membership"
        differ = con.execute(f"SELECT count(*) FROM (({ours} EXCEPT ALL SELECT * FROM naive) UNION ALL "
                             f"(SELECT * FROM naive EXCEPT ALL {ours}))").fetchone()[0]
        rows = con.execute("SELECT count(*) FROM naive").fetchone()[0]
    finally:
        con.close()
    return differ == 0, rows


def report(size: str, n: int, segments: int, info: dict, results: dict) -> str:
    def s(x: float) -> str:
        return f"{x:,.2f} s"

    def gib(b: int) -> str:
        return f"{b / 2**30:,.2f} GiB"

    lines = [
        f"# Whole-command benchmark: {size} subscribers x {segments} segments ({date.today().isoformat()})",
        "",
        f"Machine: {info['cores']} cores, {info['ram_gib']} GiB RAM, {info['cpu']}; {info['os']}.",
        f"Versions: Python {info['python']}, DuckDB {info['duckdb']}, Polars {info['polars']}, pyarrow "
        f"{info['pyarrow']}, sqlglot {info['sqlglot']}, Dagster {info['dagster']}.",
        f"Code: commit {info.get('commit', 'unknown')}.",
        f"Load average before / after: {info['load_before'][0]:.1f} / {os.getloadavg()[0]:.1f} "
        "(a shared machine: read the ratios, measured in this one run).",
        "",
        "Each figure is a child process from start to exit. Ours: `segments run` (process start, Dagster, ingest, "
        "evaluation, history, audiences, publish). Naive: one DuckDB script (load the snapshot and every events "
        "export, one `INSERT ... SELECT` per segment with our compiled SQL, write the union to Parquet).",
        "",
        "| workload | `segments run` | naive script | ours vs naive | peak RSS ours / naive |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, label in (("first", "first run (empty data folder)"),
                        ("hourly", "hourly run (new snapshot, ~1% changed, new events)")):
        ours, naive = results[name]["ours"], results[name]["naive"]
        ratio = naive["wall_s"] / ours["wall_s"]
        verdict = f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower"
        lines.append(f"| {label} | {s(ours['wall_s'])} | {s(naive['wall_s'])} | {verdict} | "
                     f"{gib(ours['peak_rss_bytes'])} / {gib(naive['peak_rss_bytes'])} |")
    lines += ["", f"Checks: {'; '.join(results['checks'])}.", "", "Targets:", ""]
    for name, target in TARGETS.items():
        ratio = results[name]["naive"]["wall_s"] / results[name]["ours"]["wall_s"]
        lines.append(f"- {name} run at least {target:g}x faster than the naive script: {ratio:.2f}x -> "
                     f"{'met' if ratio >= target else 'NOT met'}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("1M"))
    parser.add_argument("--definitions", type=int, default=100)
    parser.add_argument("--engine", default="duckdb")
    parser.add_argument("--data-root", type=Path, default=BENCH / "data")
    parser.add_argument("--results", type=Path, default=BENCH / "results")
    args = parser.parse_args(argv)

    n, size = args.size, _label(args.size)
    root = (args.data_root / f"whole-{size}").absolute()
    info = machine()
    defs = write_definitions(root / f"defs-{args.definitions}", args.definitions)
    print(f"whole-command benchmark {size} x {args.definitions} segments in {root}", flush=True)
    first_files, hourly_files = landing_sets(n, root / "landing-sets")
    data, scratch = root / "data", root / "scratch"
    for folder in (data, scratch):
        shutil.rmtree(folder, ignore_errors=True)
    scratch.mkdir(parents=True)
    segments = [str(Path(sys.executable).parent / "segments"), "run", "--data", str(data), "--defs", str(defs),
                "--engine", args.engine]
    env = {**os.environ, "DAGSTER_HOME": str(data / "dagster_home")}
    results: dict = {"checks": []}
    landed: list[Path] = []
    for name, files, as_of in (("first", first_files, FIRST_RUN), ("hourly", hourly_files, HOURLY_RUN)):
        land(files, data)
        landed += files
        snapshot = max((f for f in landed if f.parent.name == "subscribers"), key=lambda f: f.name)
        events = [f for f in landed if f.parent.name == "events"]
        out = scratch / f"naive-{name}.parquet"
        script = scratch / f"naive-{name}.sql"
        script.write_text(naive_script(defs, snapshot, events, as_of, out))
        ours = run_measured([*segments, "--as-of", _ts(as_of)], env=env)
        print(f"  {name:6s} ours   {ours['wall_s']:8.2f} s", flush=True)
        naive = run_measured([sys.executable, "-c", NAIVE_RUNNER, str(script), str(scratch / f"naive-{name}.duckdb")])
        print(f"  {name:6s} naive  {naive['wall_s']:8.2f} s", flush=True)
        equal, rows = same_membership(data / "warehouse.duckdb", out)
        if not equal:
            raise SystemExit(f"{name} run: our published membership differs from the naive script's")
        results[name] = {"ours": ours, "naive": naive}
        results["checks"].append(f"{name} run: membership == naive ({rows:,} rows)")
    text = report(size, n, args.definitions, info, results)
    args.results.mkdir(parents=True, exist_ok=True)
    stem = "-".join(p for p in ("whole", size, date.today().isoformat(), info.get("commit_short")) if p)
    (args.results / f"{stem}.md").write_text(text)
    (args.results / f"{stem}.json").write_text(json.dumps({"info": info, **results}, indent=1, default=str))
    print()
    print(text)
    print(f"written to {args.results / f'{stem}.md'}")
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
