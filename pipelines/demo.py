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
    from .runner import execute_refresh, print_run_summary
    from .sample_data import write_landing

    if not Path(paths.defs).is_dir():
        raise UserError(f"no definitions folder at {paths.defs}: run the demo from the repository root or pass --defs")
    clock = parse_as_of(as_of or DEMO_AS_OF)
    console.print(f"Writing sample data for {n_subscribers:,} subscribers into {paths.landing} …")
    written = write_landing(paths, as_of=clock, n_subscribers=n_subscribers)
    for path in written:
        console.print(f"  {path}")
    summary = execute_refresh(paths, as_of=format_ts(clock), console=console)
    print_run_summary(paths, summary, console)
    warehouse = paths.warehouse
    console.print()
    console.print("[bold]Next[/]")
    console.print(f"  Query the warehouse:  .venv/bin/segments query \"SELECT * FROM segments\" --data {paths.data}")
    console.print(f"  Or with DuckDB:       duckdb -readonly {warehouse}   (python: duckdb.connect('{warehouse}', read_only=True))")
    console.print("  Campaign files:       " + str(Path(paths.data) / "audiences" / "<audience>" / "recipients.csv"))
    console.print("  Dagster UI:           make dev   (then open http://127.0.0.1:3000)")
