"""The `segments` command line. Each command is a few lines over the library.

Bad input is one line on stderr and exit 1; usage errors exit 2 (typer);
set SEGMENTS_DEBUG=1 to see a traceback for unexpected errors.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .errors import UserError
from .settings import Paths, resolve_paths

app = typer.Typer(
    name="segments",
    help="Dynamic email-marketing segments as a batch pipeline: validate, compile, run, query.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

DefsOption = Annotated[
    str | None, typer.Option("--defs", help="Definitions folder (env SEGMENTS_DEFS, default ./segment_defs).")
]
DataOption = Annotated[
    str | None, typer.Option("--data", help="Data folder (env SEGMENTS_DATA, default ./data).")
]


def command(fn):
    """Turn UserError (and unexpected errors) into one line on stderr with exit 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        warnings.filterwarnings("ignore")
        try:
            return fn(*args, **kwargs)
        except UserError as error:
            err.print(f"error: {error}", markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as error:  # a bug, not bad input: still one line unless debugging
            if os.environ.get("SEGMENTS_DEBUG"):
                raise
            err.print(f"error: unexpected {type(error).__name__}: {error} (set SEGMENTS_DEBUG=1 for details)",
                      markup=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


def _paths(defs: str | None, data: str | None) -> Paths:
    return resolve_paths(defs, data)


@app.command()
@command
def validate(defs: DefsOption = None, data: DataOption = None) -> None:
    """Check every definition; print each problem as PATH:LINE:COLUMN: message.

    Example: segments validate --defs segment_defs
    """
    from .segments.loader import load_project

    paths = _paths(defs, data)
    project, problems = load_project(paths.defs)
    # Problems are errors, so they go to stderr (data-contract.md, command line).
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        raise typer.Exit(1)
    out.print(f"ok: {len(project.segments)} segments, {len(project.audiences)} audiences in {paths.defs}")


@app.command()
@command
def compile(  # noqa: A001 - the command is called compile
    key: Annotated[str, typer.Argument(help="Segment key (its file name without .yaml).")],
    dialect: Annotated[str, typer.Option("--dialect", help="duckdb or spark")] = "duckdb",
    as_of: Annotated[str | None, typer.Option("--as-of", help="Timestamp for relative windows (default now, UTC).")] = None,
    defs: DefsOption = None,
    data: DataOption = None,
) -> None:
    """Print the SQL query a segment compiles to.

    Example: segments compile subscribers_in_new_york --dialect spark
    """
    from .clock import parse_as_of, utc_now
    from .refresh import load_valid_project
    from .segments.to_sql import compile_segment

    if dialect not in ("duckdb", "spark"):
        err.print(f"error: unknown dialect '{dialect}' (use duckdb or spark)", markup=False)
        raise typer.Exit(2)
    project = load_valid_project(_paths(defs, data))
    if key not in project.segments:
        raise UserError(_unknown_segment(key, project.segments))
    print(compile_segment(project, key, parse_as_of(as_of) or utc_now(), dialect=dialect))


def _unknown_segment(key: str, known) -> str:
    import difflib

    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f" — did you mean '{close[0]}'?" if close else ""
    return f"unknown segment '{key}'{hint}"


@app.command()
@command
def run(
    as_of: Annotated[str | None, typer.Option("--as-of", help="The run's clock (ISO 8601, UTC; default now).")] = None,
    full: Annotated[bool, typer.Option("--full", help="Recompute everything, not only what changed.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Publish a snapshot held back by the drop rule.")] = False,
    engine: Annotated[str, typer.Option("--engine", help="duckdb | polars | spark")] = "duckdb",
    defs: DefsOption = None,
    data: DataOption = None,
) -> None:
    """Ingest new landing files, evaluate all segments, record history, publish.

    Runs the same Dagster job the schedules launch, so the run shows up in the
    Dagster UI.

    Example: segments run --as-of 2026-11-27T02:00:00Z
    """
    from .runner import execute_refresh, print_run_summary

    if engine not in ("duckdb", "polars", "spark"):
        err.print(f"error: unknown engine '{engine}' (use duckdb, polars or spark)", markup=False)
        raise typer.Exit(2)
    paths = _paths(defs, data)
    summary = execute_refresh(paths, as_of=as_of, full=full, force=force, engine=engine, console=out)
    print_run_summary(paths, summary, out)


@app.command()
@command
def query(
    sql: Annotated[str, typer.Argument(help="A read-only SQL statement.")],
    fmt: Annotated[str, typer.Option("--format", help="table | csv | json")] = "table",
    defs: DefsOption = None,
    data: DataOption = None,
) -> None:
    """Run read-only SQL against the analyst warehouse.

    Example: segments query "SELECT segment, members FROM segments ORDER BY members DESC"
    """
    from .warehouse_query import print_result, run_query

    if fmt not in ("table", "csv", "json"):
        err.print(f"error: unknown format '{fmt}' (use table, csv or json)", markup=False)
        raise typer.Exit(2)
    columns, rows = run_query(_paths(defs, data), sql)
    print_result(columns, rows, fmt, out)


@app.command(name="list")
@command
def list_segments(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    defs: DefsOption = None,
    data: DataOption = None,
) -> None:
    """Segments with their current size and change since the previous run.

    Example: segments list
    """
    import json

    from .warehouse_query import segment_listing

    rows = segment_listing(_paths(defs, data))
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
        return
    table = Table(title="Segments")
    for column in ("segment", "name", "members", "change", "last run"):
        table.add_column(column, justify="right" if column in ("members", "change") else "left")
    for row in rows:
        change = row["change"]
        table.add_row(row["segment"], row["name"], f"{row['members']:,}",
                      "" if change is None else f"{change:+,}", str(row["last_run_as_of"] or ""))
    out.print(table)


@app.command()
@command
def demo(
    as_of: Annotated[str | None, typer.Option("--as-of", help="The demo's clock (default: a fixed date).")] = None,
    subscribers: Annotated[int, typer.Option("--subscribers", help="How many subscribers to generate.")] = 10_000,
    defs: DefsOption = None,
    data: DataOption = None,
) -> None:
    """Make sample data and run everything end to end on it.

    Example: segments demo --data /tmp/segments-demo
    """
    from .demo import run_demo

    run_demo(_paths(defs, data), as_of=as_of, n_subscribers=subscribers, console=out)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
