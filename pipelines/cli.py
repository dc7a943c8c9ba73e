"""The `segments` command line: a few lines per command over the library, laid out by `cli_render`.

Bad input is one line on stderr and exit 1; usage errors are one line with exit 2.
Set SEGMENTS_DEBUG=1 to see a traceback for unexpected errors.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import warnings
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # typer >= 0.29 vendors click
from typer.core import TyperGroup, TyperOption

from .cli_render import (
    one_line,
    print_json,
    render_diff,
    render_explain,
    render_list,
    render_preview,
    render_show,
)
from .core.clock import parse_as_of, utc_now
from .core.settings import Paths, resolve_paths
from .errors import UserError


class SegmentsGroup(TyperGroup):
    """Prints usage errors as one line (`error: ...`, exit 2) instead of a box."""

    def main(self, args=None, prog_name=None, complete_var=None, **extra):
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as error:
            error.show()
            sys.exit(error.exit_code)
        except UsageError as error:
            where = f"`{error.ctx.command_path} --help`" if error.ctx is not None else "`segments --help`"
            print(f"error: {error.format_message()} (see {where})", file=sys.stderr)
            sys.exit(error.exit_code)
        except typer.TyperException as error:
            print(f"error: {error.format_message()}", file=sys.stderr)
            sys.exit(error.exit_code)
        except typer.Abort:
            print("error: aborted", file=sys.stderr)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


_display_type_rich = TyperOption.display_type_rich


def _flag_without_type(self, ctx):
    # A flag (--full, --help) takes no value; Typer 0.29 would print `<bool>` after it.
    return None if self.is_flag else _display_type_rich(self, ctx)


TyperOption.display_type_rich = _flag_without_type  # type: ignore[method-assign]

app = typer.Typer(
    name="segments",
    cls=SegmentsGroup,
    help="Dynamic email-marketing segments as a batch pipeline: validate, preview, run, query.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

DefsOption = Annotated[str | None, typer.Option(
    "--defs", help="Definitions folder (env SEGMENTS_DEFS, default ./segment_defs).")]
DataOption = Annotated[str | None, typer.Option(
    "--data", help="Data folder (env SEGMENTS_DATA, default ./data).")]


def _checked_as_of(value: str | None) -> str | None:
    """A timestamp that does not parse is a usage error (exit 2), like any bad option value."""
    try:
        parse_as_of(value)
    except UserError as error:
        raise typer.BadParameter(str(error).removeprefix("--as-of: ")) from None
    return value


AsOfOption = Annotated[str | None, typer.Option(
    "--as-of", callback=_checked_as_of,
    help="Clock for relative windows, ISO 8601 UTC (default: the last published run's as_of, else now).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


# The choices of --dialect, --engine and --format (values are the members' names).
Dialect = StrEnum("Dialect", ["duckdb", "spark"])
RunEngine = StrEnum("RunEngine", ["duckdb", "polars", "spark"])
Engine = StrEnum("Engine", ["duckdb", "polars"])
Format = StrEnum("Format", ["table", "csv", "json"])

EngineOption = Annotated[Engine, typer.Option("--engine", help="Evaluation engine.")]


# --defs/--data given before the command (`segments --data D list`) or after it (which
# wins); reset by every invocation.
_roots: dict[str, str | None] = {"defs": None, "data": None}
_ROOT_OPTIONS = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=option)
                 for name, option in (("defs", DefsOption), ("data", DataOption))]


def command(**settings):
    """Register an `app` command: it takes --defs and --data too (read by `_paths()`), and its
    UserError (and unexpected errors) print as one line on stderr with exit 1."""

    def register(fn):
        @functools.wraps(fn)
        def wrapper(*args, defs: str | None = None, data: str | None = None, **kwargs):
            warnings.filterwarnings("ignore")
            _roots.update({name: value for name, value in (("defs", defs), ("data", data)) if value})
            try:
                return fn(*args, **kwargs)
            except UserError as error:
                err.print(f"error: {one_line(error)}", markup=False, soft_wrap=True)
                raise typer.Exit(error.exit_code) from None
            except (typer.Exit, typer.Abort, KeyboardInterrupt, BrokenPipeError):
                raise  # BrokenPipeError: `segments query ... | head`, handled quietly by typer
            except Exception as error:  # a bug, not bad input: still one line unless debugging
                if os.environ.get("SEGMENTS_DEBUG"):
                    raise
                err.print(f"error: unexpected {type(error).__name__}: {one_line(error)} "
                          "(set SEGMENTS_DEBUG=1 for details)", markup=False, soft_wrap=True)
                raise typer.Exit(1) from None

        own = inspect.signature(fn, eval_str=True)
        wrapper.__signature__ = own.replace(parameters=[*own.parameters.values(), *_ROOT_OPTIONS])
        return app.command(**settings)(wrapper)

    return register


def _print(result, as_json: bool, render) -> None:
    if as_json:
        print_json(result)
    else:
        render(result, out)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version  # 40 ms: only for --version

        print(f"segments {version('segment-pipeline')}")
        raise typer.Exit(0)


@app.callback()
def _group(
    defs: DefsOption = None,
    data: DataOption = None,
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                          help="Print the version and exit.")] = False,
) -> None:
    _roots.update(defs=defs, data=data)


def _paths() -> Paths:
    paths = resolve_paths(_roots["defs"], _roots["data"])
    for option, folder in (("--data", paths.data), ("--defs", paths.defs)):
        if Path(folder).exists() and not Path(folder).is_dir():
            raise UserError(f"{option} {folder} is a file, not a folder")
    return paths


# --------------------------------------------------------------------------- running


@command()
def run(
    as_of: Annotated[str | None, typer.Option("--as-of", callback=_checked_as_of,
                                              help="The run's clock (ISO 8601, UTC; default now).")] = None,
    full: Annotated[bool, typer.Option("--full", help="Recompute everything, not only what changed.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Publish a snapshot held back by the drop rule.")] = False,
    allow_future: Annotated[bool, typer.Option(
        "--allow-future", help="Accept an --as-of more than 5 minutes after the current time.")] = False,
    engine: Annotated[RunEngine, typer.Option("--engine", help="Evaluation engine.")] = RunEngine.duckdb,
) -> None:
    """Ingest new landing files, evaluate all segments, record history, publish.

    Runs the same Dagster job the schedules launch, so the run shows up in the
    Dagster UI.

    Example: segments run --as-of 2026-11-28T02:00:00Z
    """
    from .runner import execute_refresh, print_run_summary

    paths = _paths()
    summary = execute_refresh(paths, as_of=as_of, full=full, force=force, allow_future=allow_future,
                              engine=engine.value, console=out)
    print_run_summary(paths, summary, out, err)


@command()
def validate() -> None:
    """Check every definition; print each problem as PATH:LINE:COLUMN: message.

    Example: segments validate --defs segment_defs
    """
    from .segments.loader import load_project

    paths = _paths()
    project, problems = load_project(paths.defs)
    # Problems are errors, so they go to stderr (data-contract.md, command line).
    for problem in problems:
        print(one_line(problem), file=sys.stderr)
    if problems:
        raise typer.Exit(1)
    out.print(f"ok: {len(project.segments)} segments, {len(project.audiences)} audiences in {one_line(paths.defs)}",
              markup=False)


# --------------------------------------------------------------------------- looking at segments


@command(name="list")
def list_segments(as_json: JsonOption = False) -> None:
    """Segments with their current size and change since the previous run.

    Also lists defined segments not run yet, and marks definitions edited or
    deleted since the last run.

    Example: segments list --json
    """
    from .commands.listing import segment_listing

    _print(segment_listing(_paths()), as_json, render_list)


@command()
def show(
    key: Annotated[str, typer.Argument(metavar="KEY", help="Segment key (its file name without .yaml).")],
    runs: Annotated[int, typer.Option("--runs", min=1, help="How many recent runs the size history covers.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """A segment's definition, compiled SQL, current members and size over the last runs.

    Example: segments show subscribers_in_new_york
    """
    from .commands.show import show as show_segment

    _print(show_segment(_paths(), key, runs=runs), as_json, render_show)


@command()
def compile(  # noqa: A001 - the command is called compile
    key: Annotated[str, typer.Argument(metavar="KEY", help="Segment key (its file name without .yaml).")],
    dialect: Annotated[Dialect, typer.Option("--dialect", help="SQL dialect.")] = Dialect.duckdb,
    as_of: Annotated[str | None, typer.Option("--as-of", callback=_checked_as_of,
                                              help="Timestamp for relative windows (default now, UTC).")] = None,
) -> None:
    """Print the SQL query a segment compiles to.

    The query reads the relations `subscribers`, `events` and (for segment
    filters) `segment_membership`, and returns the members' subscriber_id.

    Example: segments compile subscribers_in_new_york --dialect spark
    """
    from .commands.show import compile_sql

    print(compile_sql(_paths(), key, parse_as_of(as_of) or utc_now(), dialect.value))


@command()
def preview(
    target: Annotated[str, typer.Argument(metavar="FILE|KEY",
                                          help="A segment YAML file anywhere (a draft), or a saved segment's key.")],
    as_of: AsOfOption = None,
    sample: Annotated[int, typer.Option("--sample", min=0, help="How many members to show.")] = 10,
    engine: EngineOption = Engine.duckdb,
    as_json: JsonOption = False,
) -> None:
    """Size, a sample and overlaps of a definition not yet saved; writes nothing.

    Evaluates the definition (and the segments it references, resolved in the
    definitions folder) on the latest lake snapshot at or before --as-of.

    Example: segments preview ~/drafts/vip_new_york.yaml
    """
    from .commands.preview import preview as preview_definition

    result = preview_definition(_paths(), target, as_of=as_of, engine=engine.value, sample_size=sample)
    _print(result, as_json, render_preview)


@command()
def explain(
    key: Annotated[str, typer.Argument(metavar="KEY", help="Segment key.")],
    subscriber_id: Annotated[str, typer.Argument(metavar="SUBSCRIBER_ID", help="The subscriber's subscriber_id.")],
    as_of: AsOfOption = None,
    engine: EngineOption = Engine.duckdb,
    as_json: JsonOption = False,
) -> None:
    """Why a subscriber is or is not a member: every group and filter, with their values.

    Example: segments explain new_customers s1
    """
    from .commands.explain import explain as explain_member

    result = explain_member(_paths(), key, subscriber_id, as_of=as_of, engine=engine.value)
    _print(result, as_json, render_explain)


@command()
def diff(
    key: Annotated[str, typer.Argument(metavar="KEY", help="Segment key.")],
    sample: Annotated[int, typer.Option("--sample", min=0, help="How many entering/leaving members to show.")] = 10,
    engine: EngineOption = Engine.duckdb,
    as_json: JsonOption = False,
) -> None:
    """Who would enter and leave if the edited definition replaced the published one.

    Evaluates the working-tree definition on the last published run's inputs
    and shows how each audience's recipient count would change. Writes nothing.

    Example: segments diff active_users
    """
    from .commands.diff import diff as diff_segment

    _print(diff_segment(_paths(), key, engine=engine.value, sample_size=sample), as_json, render_diff)


# --------------------------------------------------------------------------- editing definitions


def _interactive() -> bool:
    """Prompt only a person at a terminal; scripts and pipes are never asked."""
    return sys.stdin.isatty()


@command()
def new(
    key: Annotated[str, typer.Argument(metavar="KEY", help="The new segment's key (file name without .yaml).")],
    name: Annotated[str | None, typer.Option("--name", help="Display name (default: from the key).")] = None,
    description: Annotated[str | None, typer.Option("--description", help="Optional description.")] = None,
) -> None:
    """Write a commented, valid starter definition DEFS/KEY.yaml.

    Example: segments new vip_new_york --name "VIPs in New York"
    """
    from .commands.authoring import new_segment

    path = new_segment(_paths(), key, name=name, description=description)
    out.print(f"created {one_line(path)}", markup=False)
    out.print(f"edit it, then: segments preview {key}   (and segments diff {key} before the next run)",
              markup=False)


@command()
def delete(
    key: Annotated[str, typer.Argument(metavar="KEY", help="Segment key.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a segment's definition file; refused while others reference it.

    Its membership history stays queryable in segment_membership_history. Asks
    for confirmation on a terminal unless --yes is given.

    Example: segments delete old_promo --yes
    """
    from .commands.authoring import delete_segment, plan_delete

    plan = plan_delete(_paths(), key)
    if not yes and _interactive():
        size = f" ({plan.members:,} current members)" if plan.members is not None else ""
        if not typer.confirm(f"Delete segment '{key}'{size}, file {plan.path}?", default=False):
            err.print("nothing deleted", markup=False)
            raise typer.Exit(1)
    delete_segment(plan)
    out.print(f"deleted {one_line(plan.path)}", markup=False)
    history = (f"segments query \"SELECT * FROM segment_membership_history WHERE segment = '{key}'\"")
    if plan.members is not None:
        out.print(f"Its membership history stays queryable: {history}. The next `segments run` closes its "
                  f"{plan.members:,} open membership(s).", markup=False)
    else:
        out.print(f"It was not in the last published run; any earlier history stays queryable: {history}.",
                  markup=False)


# --------------------------------------------------------------------------- the warehouse


# SQL that starts with a `--` comment (every file in sql/examples/) is the statement, not an option.
@command(context_settings={"ignore_unknown_options": True})
def query(
    sql: Annotated[str, typer.Argument(metavar="SQL", help="A read-only SQL statement.")],
    fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.table,
) -> None:
    """Run read-only SQL against the analyst warehouse.

    Example: segments query "SELECT segment, members FROM segments ORDER BY members DESC"
    """
    from .warehouse_query import print_result, run_query

    columns, rows = run_query(_paths(), sql)
    print_result(columns, rows, fmt.value, out)


@command()
def demo(
    as_of: Annotated[str | None, typer.Option("--as-of", callback=_checked_as_of,
                                              help="The demo's clock (default: a fixed date).")] = None,
    subscribers: Annotated[int, typer.Option("--subscribers", help="How many subscribers to generate.")] = 10_000,
) -> None:
    """Make sample data and run everything end to end on it.

    Example: segments demo --data /tmp/segments-demo
    """
    from .demo import run_demo

    run_demo(_paths(), as_of=as_of, n_subscribers=subscribers, console=out, err=err)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
