"""Readers during publishes, and crashes (SIGKILL) at every step of a publish."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from pipelines.core.files import PAUSE_AT_ENV, PAUSE_DIR_ENV, sha256_file
from pipelines.publish.state import current_state

try:  # tests/ on sys.path (no tests/__init__.py)
    from test_publish_support import (
        READER_CHECKS,
        make_paths,
        publish_scenario_run,
        scenario_as_of,
        scenario_run,
    )
except ModuleNotFoundError:  # tests/ is a package
    from tests.test_publish_support import (
        READER_CHECKS,
        make_paths,
        publish_scenario_run,
        scenario_as_of,
        scenario_run,
    )

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _python(code: str, env: dict | None = None) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)]), **(env or {})}
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _check_consistent(paths) -> None:
    """The published state is readable, self-consistent and pointing at a complete version."""
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        for name, sql in READER_CHECKS.items():
            assert con.execute(sql).fetchall()[0][0] == 0, name
    state = current_state(paths)
    assert (state.version_dir / "state.json").is_file()
    for folder in (paths.data / "audiences").iterdir():
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["run_id"] == state.run_id, folder
        for name, info in manifest["files"].items():
            assert sha256_file(folder / name) == info["sha256"], (folder, name)


def _expected_history(published: list[int]) -> list[tuple]:
    """Stays by hand: walk the published runs in order."""
    stays: dict[tuple[str, str], list] = {}
    rows = []
    for n in published:
        members, _ = scenario_run(n)
        as_of = scenario_as_of(n)
        now = {(seg, sid) for seg, ids in members.items() for sid in ids}
        for key in list(stays):
            if key not in now:
                rows.append((*key, stays.pop(key)[0], as_of))
        for key in now - set(stays):
            stays[key] = [as_of]
    rows += [(*key, start[0], None) for key, start in stays.items()]
    return sorted(rows, key=lambda r: (r[0], r[1], r[2]))


def test_readers_never_see_errors_or_a_mix_while_runs_publish(tmp_path):
    paths = make_paths(tmp_path)
    publish_scenario_run(paths, 0)
    stop, result = tmp_path / "stop", tmp_path / "reader.json"
    reader = _python(
        "from test_publish_support import reader_loop; "
        f"reader_loop({str(paths.warehouse)!r}, {str(stop)!r}, {str(result)!r})"
    )
    try:
        time.sleep(1.5)  # let the reader start reading the first version
        for n in range(1, 7):
            publish_scenario_run(paths, n, keep_versions=2)
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        stop.write_text("stop")
        _, stderr = reader.communicate(timeout=60)
    assert reader.returncode == 0, stderr
    report = json.loads(result.read_text())
    assert report["errors"] == []
    assert report["inconsistent"] == []
    assert report["reads"] >= 10
    assert len(report["versions"]) >= 3  # it really read across swaps
    _check_consistent(paths)


CRASH_POINTS = [
    "stage:files",  # some Parquet files of the new version written
    "stage:done",  # new version directory complete, not published
    "publish:catalog_built",  # new catalog built beside warehouse.duckdb
    "publish:swapped",  # catalog swapped in, run log and audience files not yet
    "publish:audience_file",  # one audience file replaced, its manifest not yet
    "publish:cleanup",  # everything published, old versions not yet pruned
]
AFTER_SWAP = {"publish:swapped", "publish:audience_file", "publish:cleanup"}


def _kill_at(paths, point: str, n: int, tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    child = _python(
        f"from test_publish_support import child_publish; child_publish({str(paths.data)!r}, {n}, {n}, 400)",
        env={PAUSE_AT_ENV: point, PAUSE_DIR_ENV: str(markers)},
    )
    marker = markers / f"{point.replace(':', '_')}.reached"
    deadline = time.monotonic() + 60
    while not marker.exists():
        if child.poll() is not None:
            pytest.fail(f"child ended before {point}: {child.communicate()[1]}")
        assert time.monotonic() < deadline, f"child never reached {point}"
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)


@pytest.mark.slow  # SIGKILLs child processes
def test_sigkill_at_each_step_leaves_a_readable_state_and_the_next_run_completes(tmp_path):
    paths = make_paths(tmp_path)
    publish_scenario_run(paths, 0)
    published = [0]
    n = 1
    for point in CRASH_POINTS:
        before = current_state(paths)
        _kill_at(paths, point, n, tmp_path)
        after = current_state(paths)
        if point in AFTER_SWAP:
            assert after.run_id == f"run{n:03d}", point
            published.append(n)
        else:
            assert after == before, point
        with duckdb.connect(str(paths.warehouse), read_only=True) as con:
            assert con.execute("SELECT count(*) FROM segment_membership").fetchall()[0][0] > 0
        # The next run completes, repairs what the crash left and cleans up.
        n += 1
        result = publish_scenario_run(paths, n)
        assert result.run_id == f"run{n:03d}" and current_state(paths) == result
        published.append(n)
        n += 1
        _check_consistent(paths)
        versions = paths.published / "versions"
        assert not [p for p in versions.iterdir() if p.name.startswith(".staging-")]
        assert not [p for p in paths.data.iterdir() if p.name.startswith(".warehouse.duckdb.")]
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        history = con.execute("""SELECT segment, subscriber_id, valid_from, valid_to
                                 FROM segment_membership_history ORDER BY ALL""").fetchall()
        runs = con.execute("SELECT run_id FROM runs WHERE status = 'success' ORDER BY as_of").fetchall()
    assert history == _expected_history(published)
    assert [r[0] for r in runs] == [f"run{k:03d}" for k in published]


@pytest.mark.slow  # SIGKILLs child processes
def test_sigkill_after_random_delays(tmp_path):
    paths = make_paths(tmp_path)
    publish_scenario_run(paths, 0)
    rng = random.Random(7)
    first = 1
    for _ in range(2):
        child = _python(
            f"from test_publish_support import child_publish; child_publish({str(paths.data)!r}, {first}, "
            f"{first + 20}, 400)"
        )
        time.sleep(rng.uniform(2.0, 3.5))  # interpreter start + some publishes, then somewhere in one
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
        state = current_state(paths)
        with duckdb.connect(str(paths.warehouse), read_only=True) as con:
            for name, sql in READER_CHECKS.items():
                assert con.execute(sql).fetchall()[0][0] == 0, name
        first = int(state.run_id[3:]) + 1
        result = publish_scenario_run(paths, first)
        assert current_state(paths) == result
        _check_consistent(paths)
        first += 1
