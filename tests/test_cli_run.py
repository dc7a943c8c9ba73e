"""`segments run` tells what it did: the summary, warnings on stderr (exit 0),
`--version`, and help without type placeholders on flags."""

from __future__ import annotations

import re

import pytest
from conftest import AS_OF, SUBSCRIBERS_CSV, write_project
from typer.testing import CliRunner

from pipelines.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _dagster_home(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))


def _run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_a_run_over_a_file_with_bad_rows_warns_on_stderr_and_exits_0(tmp_path):
    bad = SUBSCRIBERS_CSV + "s6,,active,Fay,Reno,NV,,,,,,,\ns7,not-an-email,active,Gus,Reno,NV,,,,,,,\n"
    paths = write_project(tmp_path, subscribers=bad)
    result = _run("run", "--as-of", AS_OF, "--defs", str(paths.defs), "--data", str(paths.data))
    assert result.exit_code == 0, result.output
    out, err = result.stdout, result.stderr
    assert "engine duckdb · full" in out
    assert "snapshot subscribers_20261127T050000Z.csv" in out
    assert "files ingested: 2" in out
    assert "quarantined rows: 2 (worst file subscribers_20261127T050000Z.csv: 2 of 7 rows, 29%)" in out
    assert re.search(r"took \d+\.\d s", out)
    # Warnings from ingest and from the failed (non-blocking) check, on stderr only.
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert any("subscribers_20261127T050000Z.csv: 2 row(s) quarantined" in w for w in warnings), err
    assert any(w.startswith("warning: check quarantine_rate on lake_subscribers failed: 29% of the rows") for w in
               warnings), err
    assert "warning:" not in out

    # The same run again: nothing changed, the audience's recipients did not move.
    again = _run("run", "--as-of", AS_OF, "--defs", str(paths.defs), "--data", str(paths.data))
    assert again.exit_code == 0 and "Nothing changed" in again.stdout
    assert re.search(r"nyc_meetup_invite\s+│\s+1\s+│\s+\+0", again.stdout), again.stdout

    # Piped (80 columns): every key whole on its line, the names wrap instead.
    listing = _run("list", "--defs", str(paths.defs), "--data", str(paths.data))
    for key in ("ny_webinar_not_customers", "subscribers_in_new_york", "engaged_subscribers"):
        assert re.search(rf"│ {key}\s+│", listing.stdout), listing.stdout
    # A piped query table keeps every value whole on one line, however long.
    long_value = "x" * 150
    piped = _run("query", f"SELECT segment, '{long_value}' AS v FROM segments", "--defs", str(paths.defs),
                 "--data", str(paths.data))
    assert piped.exit_code == 0, piped.output
    assert re.search(rf"│ ny_webinar_not_customers\s+│ {long_value} │", piped.stdout), piped.stdout


def test_version():
    from importlib.metadata import version

    result = _run("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"segments {version('segment-pipeline')}"


@pytest.mark.parametrize("command", ["run", "show", "query", "demo", "list", "delete"])
def test_help_shows_no_bool_placeholder(command):
    result = runner.invoke(app, [command, "--help"], terminal_width=120)
    assert result.exit_code == 0
    assert "<bool>" not in result.stdout


def test_demo_leaves_a_week_of_history_that_every_example_query_shows(tmp_path):
    """`segments demo` runs a day at a time: at least 7 runs, and every sql/examples
    file returns rows; a second demo changes nothing."""
    from conftest import REPO

    data = tmp_path / "demo"
    args = ["--defs", str(REPO / "segment_defs"), "--data", str(data)]
    result = _run("demo", "--subscribers", "2000", *args)
    assert result.exit_code == 0, result.output
    assert "day 7/8" in result.stdout and "Published run" in result.stdout
    runs = _run("query", "SELECT count(*) FROM runs WHERE status = 'success'", "--format", "csv", *args)
    assert int(runs.stdout.splitlines()[1]) >= 7
    for example in sorted((REPO / "sql" / "examples").glob("*.sql")):
        rows = _run("query", example.read_text(), "--format", "csv", *args)
        assert rows.exit_code == 0 and len(rows.stdout.splitlines()) > 1, example.name
    show = _run("show", "engaged_subscribers", *args)
    assert "size over the last 8 run(s)" in show.stdout

    again = _run("demo", "--subscribers", "2000", *args)
    assert again.exit_code == 0 and "Nothing changed" in again.stdout
    runs = _run("query", "SELECT count(*) FROM runs", "--format", "csv", *args)
    assert int(runs.stdout.splitlines()[1]) == 8


def test_demo_refuses_a_future_as_of_without_offering_a_flag_it_lacks(tmp_path):
    """`segments demo --as-of <next year>`: exit 2, one line naming --as-of (demo has no
    --allow-future to suggest), and no sample data written."""
    from conftest import REPO

    data = tmp_path / "demo"
    result = _run("demo", "--as-of", "2099-01-01T00:00:00Z", "--defs", str(REPO / "segment_defs"),
                  "--data", str(data))
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: --as-of 2099-01-01T00:00:00Z is more than 5 minutes after the current time")
    assert "--allow-future" not in line and "earlier --as-of" in line
    assert not (data / "landing").exists()


def test_progress_names_the_steps_on_a_terminal_only(project_paths, monkeypatch):
    """On a terminal a run that takes more than a second shows which step runs; piped, nothing."""
    import io

    import dagster as dg
    from rich.console import Console

    from pipelines import dagster_run
    from pipelines.runner import execute_refresh

    monkeypatch.setattr(dagster_run, "PROGRESS_AFTER_S", 0.0)  # the tiny fixture may finish within a second
    terminal, pipe = io.StringIO(), io.StringIO()
    with dg.instance_for_test() as instance:
        execute_refresh(project_paths, as_of=AS_OF, instance=instance,
                        console=Console(file=terminal, force_terminal=True, width=100))
        execute_refresh(project_paths, as_of="2026-11-28T06:00:00Z", instance=instance,
                        console=Console(file=pipe, width=100))
    assert "refresh: " in terminal.getvalue()
    assert pipe.getvalue() == ""
