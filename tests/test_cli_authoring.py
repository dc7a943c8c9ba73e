"""`segments new` and `segments delete` on the spec example project (no run needed)."""

from __future__ import annotations

import pytest
from conftest import write_project
from rich.console import Console
from typer.testing import CliRunner

from pipelines import cli
from pipelines.cli import app
from pipelines.segments.loader import load_project

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """Tables as wide as they need: rich fixes the width at import from COLUMNS, if set."""
    monkeypatch.setattr(cli, "out", Console(highlight=False, soft_wrap=True, width=250))


def segments(paths, *args: str):
    return runner.invoke(app, [*args, "--defs", str(paths.defs), "--data", str(paths.data)])


def one_error_line(result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_new_writes_a_valid_commented_starter(tmp_path):
    paths = write_project(tmp_path)
    result = segments(paths, "new", "vip_new_york", "--name", 'VIPs in "New York": gala', "--description", "Invite")
    assert result.exit_code == 0, result.output
    target = paths.defs / "vip_new_york.yaml"
    assert f"created {target}" in result.stdout
    text = target.read_text()
    assert text.startswith("# ") and "# - event: purchase" in text and "# - {segment:" in text
    project, problems = load_project(paths.defs)
    assert problems == []
    segment = project.segments["vip_new_york"]
    assert (segment.name, segment.description) == ('VIPs in "New York": gala', "Invite")
    assert segments(paths, "validate").exit_code == 0


def test_new_default_name_and_refusals(tmp_path):
    paths = write_project(tmp_path)
    assert segments(paths, "new", "lapsed_buyers").exit_code == 0
    assert load_project(paths.defs)[0].segments["lapsed_buyers"].name == "Lapsed buyers"
    line = one_error_line(segments(paths, "new", "active_users", "--name", "Again"))
    assert line == f"error: segment 'active_users' already exists: {paths.defs / 'active_users.yaml'}"
    assert "invalid segment key 'Bad-Key'" in one_error_line(segments(paths, "new", "Bad-Key"))
    assert "--name must be 1 to 200 characters" in one_error_line(segments(paths, "new", "x1", "--name", "x" * 201))
    assert not (paths.defs / "x1.yaml").exists()
    assert one_error_line(segments(paths, "new"), code=2).startswith("error: Missing argument 'KEY'")


def test_delete_refuses_while_referenced_and_lists_who(tmp_path):
    paths = write_project(tmp_path)
    line = one_error_line(segments(paths, "delete", "subscribers_in_new_york", "--yes"))
    assert line.startswith("error: cannot delete segment 'subscribers_in_new_york'")
    assert "segment ny_webinar_not_customers" in line and "audience nyc_meetup_invite" in line
    assert (paths.defs / "subscribers_in_new_york.yaml").exists()


def test_delete_counts_references_from_broken_files_too(tmp_path):
    paths = write_project(tmp_path)
    (paths.defs / "draft.yaml").write_text(
        "name: Draft\ngroups:\n  - filters:\n      - {segment: engaged_subscribers, op: is}\n"
        "      - {field: stat, op: is, value: NY}\n")
    line = one_error_line(segments(paths, "delete", "engaged_subscribers"))
    assert "segment draft" in line
    assert (paths.defs / "engaged_subscribers.yaml").exists()


def test_delete_without_a_terminal_deletes_and_points_at_history(tmp_path):
    paths = write_project(tmp_path)
    result = segments(paths, "delete", "engaged_subscribers")  # CliRunner's stdin is not a TTY: no prompt
    assert result.exit_code == 0, result.output
    assert not (paths.defs / "engaged_subscribers.yaml").exists()
    assert "segment_membership_history" in result.stdout
    assert segments(paths, "validate").exit_code == 0
    line = one_error_line(segments(paths, "delete", "engaged_subscriber", "--yes"))
    assert line.startswith("error: unknown segment 'engaged_subscriber'")


def test_delete_unknown_key_suggests_the_closest(tmp_path):
    paths = write_project(tmp_path)
    line = one_error_line(segments(paths, "delete", "active_user", "--yes"))
    assert line == "error: unknown segment 'active_user' — did you mean 'active_users'?"


def test_delete_asks_at_a_terminal(tmp_path, monkeypatch):
    paths = write_project(tmp_path)
    monkeypatch.setattr(cli, "_interactive", lambda: True)
    result = runner.invoke(app, ["delete", "engaged_subscribers", "--defs", str(paths.defs), "--data",
                                 str(paths.data)], input="n\n")
    assert result.exit_code == 1 and "nothing deleted" in result.stderr
    assert (paths.defs / "engaged_subscribers.yaml").exists()
    result = runner.invoke(app, ["delete", "engaged_subscribers", "--defs", str(paths.defs), "--data",
                                 str(paths.data)], input="y\n")
    assert result.exit_code == 0, result.output
    assert not (paths.defs / "engaged_subscribers.yaml").exists()
