"""A run at the published `as_of` on the very inputs it was made from ends before
Dagster starts (issue 20: a no-op's fixed cost); anything that might change the
result goes to a real run, which decides by content (run/prepare.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from conftest import AS_OF, EVENTS_CSV, REPO

from pipelines.runner import execute_refresh

LATER = "2026-11-27T07:00:00Z"


def refresh(paths, instance, as_of: str = AS_OF):
    return execute_refresh(paths, as_of=as_of, instance=instance)


def dagster_runs(instance) -> int:
    return len(instance.get_runs())


def published_run(paths) -> str:
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        return con.execute("SELECT run_id FROM published_state").fetchall()[0][0]


def test_the_same_run_again_starts_no_dagster_run(project_paths):
    paths = project_paths
    with dg.instance_for_test() as instance:
        first = refresh(paths, instance)
        inode = paths.warehouse.stat().st_ino
        again = refresh(paths, instance)
        assert again.status == "unchanged" and again.ctx.unchanged_run_id == first.ctx.params.run_id
        assert again.ctx.snapshot_name == first.ctx.snapshot_name
        assert dagster_runs(instance) == 1
        assert paths.warehouse.stat().st_ino == inode  # nothing was published


def test_the_command_answers_a_no_op_without_importing_dagster(project_paths):
    """What makes a no-op cost well under a second: the modules it never loads."""
    paths = project_paths
    env = {**os.environ, "SEGMENTS_DEFS": str(paths.defs), "SEGMENTS_DATA": str(paths.data),
           "DAGSTER_HOME": str(Path(paths.data) / "dagster_home")}
    command = [sys.executable, "-X", "importtime", "-m", "pipelines.cli", "run", "--as-of", AS_OF]
    first = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    assert first.returncode == 0 and "Published run" in first.stdout
    assert " dagster" in first.stderr  # a real run imports it
    again = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.startswith("Nothing changed: the same inputs were already published")
    imported = {line.rsplit("|", 1)[-1].strip() for line in again.stderr.splitlines() if "|" in line}
    assert not {name for name in imported if name.split(".")[0] in ("dagster", "pandas", "polars", "ruamel")}


def _new_events(paths) -> None:
    (Path(paths.data) / "landing" / "events" / "events_20261127T055000Z.csv").write_text(
        EVENTS_CSV.splitlines()[0] + "\ne9,s5,purchase,2026-11-27T05:00:00Z,3,mug,\n")


def _edit_definition(paths) -> None:
    definition = Path(paths.defs) / "subscribers_in_new_york.yaml"
    definition.write_text(definition.read_text().replace("NY", "MA"))


def _forget_a_ledger_entry(paths) -> None:
    # README: how to retry a rejected file is to delete its ledger entry.
    next(iter((Path(paths.data) / "lake" / "_ledger").glob("*.json"))).unlink()


@pytest.mark.parametrize("change, publishes", [
    (_new_events, True),
    (_edit_definition, True),
    (_forget_a_ledger_entry, False),  # ingested again: the same content, so nothing new to publish
])
def test_a_changed_input_gets_a_real_run(project_paths, change, publishes):
    paths = project_paths
    with dg.instance_for_test() as instance:
        first = refresh(paths, instance)
        change(paths)
        again = refresh(paths, instance)
        assert dagster_runs(instance) == 2
        assert again.status == ("published" if publishes else "unchanged")
        assert published_run(paths) == (again.ctx.params.run_id if publishes else first.ctx.params.run_id)


def test_a_touched_landing_file_or_a_comment_needs_one_real_run(project_paths):
    """Not the same bytes on disk (a new mtime, a comment): one run looks, finds the same
    content and publishes nothing; a touched file is then known again, a comment is not
    (its run did not publish, so the published signature is the old one)."""
    paths = project_paths
    events = Path(paths.data) / "landing" / "events" / "events_20261127T050000Z.csv"
    definition = Path(paths.defs) / "subscribers_in_new_york.yaml"
    with dg.instance_for_test() as instance:
        refresh(paths, instance)
        os.utime(events, ns=(events.stat().st_atime_ns, events.stat().st_mtime_ns + 10**9))
        assert refresh(paths, instance).status == "unchanged" and dagster_runs(instance) == 2
        assert refresh(paths, instance).status == "unchanged" and dagster_runs(instance) == 2
        definition.write_text("# a comment\n" + definition.read_text())
        assert refresh(paths, instance).status == "unchanged" and dagster_runs(instance) == 3
        # A later as_of is a new run whatever the inputs; it records their signature again.
        assert refresh(paths, instance, LATER).status == "published" and dagster_runs(instance) == 4
        assert refresh(paths, instance, LATER).status == "unchanged" and dagster_runs(instance) == 4


def test_a_landing_link_is_always_looked_at(project_paths, tmp_path):
    paths = project_paths
    outside = tmp_path / "outside.csv"
    outside.write_text(EVENTS_CSV)
    with dg.instance_for_test() as instance:
        refresh(paths, instance)
        (Path(paths.data) / "landing" / "events" / "events_20261127T055900Z.csv").symlink_to(outside)
        with pytest.raises(Exception, match="symbolic link"):
            refresh(paths, instance)
        assert dagster_runs(instance) == 2
