"""`segments demo`: a week of sample data in the landing folder, then a real run a day.

Each day changes a share of subscribers, so every history relation, the `sql/examples/`
queries and the `show` sparkline have something to show.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from rich.console import Console

from .core.clock import FUTURE_TOLERANCE, format_ts, parse_as_of, utc_now
from .core.settings import Paths
from .errors import UserError
from .publish.state import current_state
from .run.params import RunContext, RunParams
from .runner import RunSummary, execute_refresh, print_run_summary
from .sample_data import write_landing
from .sample_data.changes import write_changed_landing

# The last day's clock, fixed so that a second `make demo` finds the same landing files
# and the same as_of, and changes nothing.
DEMO_AS_OF = "2026-11-27T06:00:00Z"
DEMO_DAYS = 8  # a week back from the last run: members_on_date.sql looks 7 days back
DAILY_CHURN = 0.05  # share of subscribers changed each day (a tenth of that gone, as many new)


def run_demo(paths: Paths, *, as_of: str | None, n_subscribers: int, console: Console,
             err: Console | None = None) -> None:
    if not Path(paths.defs).is_dir():
        raise UserError(f"no definitions folder at {paths.defs}: run the demo from the repository root or pass --defs")
    clock = parse_as_of(as_of or DEMO_AS_OF)
    assert clock is not None  # a non-empty text parses or raises
    now = utc_now()
    if clock > now + FUTURE_TOLERANCE:  # refused as `segments run` does, but demo has no --allow-future
        raise UserError(f"--as-of {format_ts(clock)} is more than {FUTURE_TOLERANCE.seconds // 60} minutes after "
                        f"the current time ({format_ts(now)}); pass an earlier --as-of", exit_code=2)
    days = [clock - timedelta(days=DEMO_DAYS - 1 - k) for k in range(DEMO_DAYS)]
    published = current_state(paths)
    if as_of is None and published is not None and published.as_of > clock:
        # Later runs happened here (`segments run`, a schedule): history only moves
        # forward, so the demo shows what is published instead of running again.
        console.print(f"{paths.data} already has runs up to {format_ts(published.as_of)}, after the demo's clock "
                      f"({DEMO_AS_OF}); nothing new to run. Pass --as-of to run the demo at a later time.", markup=False)
        params = RunParams(run_id=published.run_id, as_of=published.as_of, started_at=published.as_of)
        print_run_summary(paths, RunSummary(RunContext(params, unchanged_run_id=published.run_id)),
                          console, err)
        return
    # Days already published are not run again (history only moves forward); the last
    # day always runs, so a second demo ends with "Nothing changed".
    todo = [day for day in days if published is None or day >= published.as_of or day == clock]
    console.print(f"Writing sample data for {n_subscribers:,} subscribers, one snapshot a day from "
                  f"{format_ts(days[0])} to {format_ts(clock)}, into {paths.landing} …", markup=False)
    summary = None
    for index, day in enumerate(days):
        if day not in todo:
            continue
        if index == 0:
            write_landing(paths, as_of=day, n_subscribers=n_subscribers)
        else:
            write_changed_landing(paths, as_of=days[0], changed_as_of=day, since=days[index - 1],
                                  n_subscribers=n_subscribers, share=DAILY_CHURN, variant=index)
        summary = execute_refresh(paths, as_of=format_ts(day), console=console)
        if day != clock:
            console.print(f"  day {index + 1}/{DEMO_DAYS}, as_of {format_ts(day)}: {summary.status} "
                          f"({summary.ctx.mode}, {summary.duration_s:.1f} s)")
    assert summary is not None  # the last day always runs
    print_run_summary(paths, summary, console, err)
    console.print()
    console.print("[bold]Next[/]")
    console.print(f"  Query the warehouse:  .venv/bin/segments query \"SELECT * FROM segment_sizes\" --data {paths.data}", markup=False)
    console.print("  History of a segment: .venv/bin/segments show engaged_subscribers   (size sparkline over the runs)")
    console.print(f"  Or from Python:       duckdb.connect('{paths.warehouse}', read_only=True)"
                  "   (DuckDB 2.x)", markup=False)
    console.print("  Campaign files:       " + str(Path(paths.data) / "audiences" / "<audience>" / "recipients.csv"), markup=False)
    console.print("  Dagster UI:           make dev   (then open http://127.0.0.1:3000)")
