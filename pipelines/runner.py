"""`segments run` and `segments demo`: one refresh and its summary.

A run at the `as_of` of the published version, on the very inputs it was made
from, ends here before Dagster is even imported (run/inputs.py): a no-op costs
well under a second. Any other run executes the refresh job in-process
(dagster_run.py), so it appears in the Dagster UI.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Column

from .cli_render import escape, print_table
from .core.clock import format_ts, parse_as_of, refuse_future, utc_now
from .core.files import private_umask
from .core.settings import Paths
from .publish.audience_files import resync_audience_files
from .publish.catalog import open_warehouse
from .publish.lock import writer_lock
from .publish.state import open_catalog_read_only
from .run.inputs import published_unchanged
from .run.params import RunContext, RunParams


@dataclass
class RunSummary:
    ctx: RunContext  # what the run's first step decided
    duration_s: float | None = None
    warnings: list[str] = field(default_factory=list)  # from ingest and from every failed (warning) check
    audiences_before: dict[str, int] = field(default_factory=dict)  # recipients before the run

    @property
    def status(self) -> str:
        return "unchanged" if self.ctx.unchanged else "published"


def execute_refresh(paths: Paths, *, as_of: str | None = None, full: bool = False, force: bool = False,
                    allow_future: bool = False, engine: str = "duckdb", console: Console | None = None,
                    instance=None) -> RunSummary:
    """One refresh at `as_of` (default now); a failed step becomes one UserError line."""
    resolved = parse_as_of(as_of) or utc_now()  # one clock for the whole run
    private_umask()  # before the data folder and the Dagster instance's files are made
    # Opening the warehouse re-points a moved data folder's views, even for a run refused below.
    audiences_before = _published_audiences(paths)
    refuse_future(resolved, utc_now(), allowed=allow_future)  # before a run exists: a usage error
    Path(paths.data).mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with writer_lock(paths):
        published = published_unchanged(paths, resolved)
        if published is not None:
            # A run killed after its swap left the send lists before it: repaired, as any run does.
            resync_audience_files(paths)
    if published is not None:
        params = RunParams(run_id=published.run_id, as_of=resolved, started_at=utc_now(), engine=engine,
                           force=force, full=full, allow_future=allow_future)
        ctx = RunContext(params, snapshot_name=published.snapshot, snapshot_rows=published.snapshot_rows,
                         fingerprint=published.fingerprint, unchanged_run_id=published.run_id)
        return RunSummary(ctx, duration_s=time.monotonic() - started, audiences_before=audiences_before)
    from .dagster_run import run_refresh_job  # importing Dagster alone takes longer than a no-op run

    ctx, warnings = run_refresh_job(paths, resolved, full=full, force=force, allow_future=allow_future,
                                    engine=engine, console=console, instance=instance)
    return RunSummary(ctx, duration_s=time.monotonic() - started, warnings=warnings,
                      audiences_before=audiences_before)


def _published_audiences(paths: Paths) -> dict[str, int]:
    """Recipients per audience in the published warehouse (none before the first run)."""
    if not Path(paths.warehouse).exists():
        return {}
    with open_warehouse(paths) as con:
        return dict(con.execute("SELECT audience, recipients FROM audiences").fetchall())


def print_run_summary(paths: Paths, summary: RunSummary, console: Console, err: Console | None = None) -> None:
    """The run in a few lines, the segment and audience tables; warnings go to `err` (stderr)."""
    ctx, as_of = summary.ctx, format_ts(summary.ctx.params.as_of)
    if ctx.unchanged:
        console.print(f"[bold]Nothing changed[/]: the same inputs were already published for as_of {as_of}.")
    else:
        console.print(f"[bold green]Published[/] run {ctx.params.run_id} (as_of {as_of}) to "
                      f"{escape(paths.warehouse)}")
    if summary.duration_s is not None:
        console.print(f"  took {summary.duration_s:.1f} s · engine {ctx.params.engine} · {escape(ctx.mode)}")
    if ctx.snapshot_name:
        console.print(f"  snapshot {escape(ctx.snapshot_name)}")
    files = ctx.ingested
    listing = f": {escape(', '.join(files[:5]))}{' …' if len(files) > 5 else ''}" if files else ""
    console.print(f"  files ingested: {len(files)}{listing}")
    line = f"  quarantined rows: {ctx.quarantined_rows:,}"
    rates = {name: (bad, loaded + bad) for name, (loaded, bad) in ctx.row_counts.items() if bad}
    if rates:
        worst = max(rates, key=lambda name: rates[name][0] / rates[name][1])
        bad, total = rates[worst]
        line += f" (worst file {escape(worst)}: {bad:,} of {total:,} rows, {bad / total:.0%})"
    console.print(line)
    # The catalog as it is now, without re-pointing views again (the run did that).
    with open_catalog_read_only(Path(paths.warehouse)) as con:
        sizes = con.execute(
            """SELECT s.segment, s.name, s.members, z.entered, z.exited
               FROM segments s LEFT JOIN segment_sizes z
                 ON z.segment = s.segment AND z.run_id = (SELECT run_id FROM runs WHERE status = 'success'
                                                          ORDER BY as_of DESC, finished_at DESC LIMIT 1)
               ORDER BY s.segment"""
        ).fetchall()
        audiences = con.execute(
            "SELECT audience, count(*) FROM recipients GROUP BY audience ORDER BY audience").fetchall()
    rows = [(escape(key), escape(name), f"{members:,}", f"+{entered or 0:,}", f"-{exited or 0:,}")
            for key, name, members, entered, exited in sizes]
    # Keys and numbers are never cut; only the display name gives way on a narrow terminal.
    columns = [Column(h, no_wrap=True, justify="right" if i > 1 else "left",
                      min_width=None if h == "name" else max([len(h)] + [len(row[i]) for row in rows]))
               for i, h in enumerate(("segment", "name", "members", "entered", "exited"))]
    print_table(console, rows, *columns, title="Segments")
    before = summary.audiences_before

    def change(key: str, count: int) -> str:  # a new audience is "new", but not in the first run
        if key in before:
            return f"{count - before[key]:+,}"
        return "new" if before else ""

    print_table(console, [(escape(key), f"{count:,}", change(key, count)) for key, count in audiences],
                Column("audience", no_wrap=True), Column("recipients", justify="right", no_wrap=True),
                Column("change", justify="right", no_wrap=True),
                title="Audiences (recipients after suppression)")
    # Warnings on stderr (the run still exits 0): a person sees them, a pipe's data stays clean.
    for warning in summary.warnings:
        (err or console).print(f"[yellow]warning:[/] {escape(warning)}")
