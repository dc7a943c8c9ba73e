"""`segments demo`: sample data in the landing folder, then a real run end to end."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from .clock import format_ts, parse_as_of
from .errors import UserError
from .settings import Paths

# A fixed clock keeps the demo reproducible: a second `make demo` finds the
# same landing files and the same as_of, and changes nothing.
DEMO_AS_OF = "2026-11-27T06:00:00Z"


def run_demo(paths: Paths, *, as_of: str | None, n_subscribers: int, console: Console) -> None:
    from .publish.state import current_state
    from .runner import RunSummary, execute_refresh, print_run_summary
    from .sample_data import write_landing

    if not Path(paths.defs).is_dir():
        raise UserError(f"no definitions folder at {paths.defs}: run the demo from the repository root or pass --defs")
    clock = parse_as_of(as_of or DEMO_AS_OF)
    published = current_state(paths)
    if as_of is None and published is not None and published.as_of > clock:
        # Later runs happened here (`segments run`, a schedule): history only moves
        # forward, so the demo shows what is published instead of running again.
        console.print(f"{paths.data} already has runs up to {format_ts(published.as_of)}, after the demo's clock "
                      f"({DEMO_AS_OF}); nothing new to run. Pass --as-of to run the demo at a later time.", markup=False)
        print_run_summary(paths, RunSummary(run_id=published.run_id, as_of=format_ts(published.as_of),
                                            unchanged=True, status="unchanged"), console)
        return
    console.print(f"Writing sample data for {n_subscribers:,} subscribers into {paths.landing} …", markup=False)
    written = write_landing(paths, as_of=clock, n_subscribers=n_subscribers)
    for path in written:
        console.print(f"  {path}", markup=False)
    summary = execute_refresh(paths, as_of=format_ts(clock), console=console)
    print_run_summary(paths, summary, console)
    warehouse = paths.warehouse
    console.print()
    console.print("[bold]Next[/]")
    console.print(f"  Query the warehouse:  .venv/bin/segments query \"SELECT * FROM segments\" --data {paths.data}", markup=False)
    console.print(f"  Or from Python:       duckdb.connect('{warehouse}', read_only=True)   (DuckDB 2.x)", markup=False)
    console.print("  Campaign files:       " + str(Path(paths.data) / "audiences" / "<audience>" / "recipients.csv"), markup=False)
    console.print("  Dagster UI:           make dev   (then open http://127.0.0.1:3000)")
