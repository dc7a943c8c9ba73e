"""Sending safely (data-contract.md, "Sending safely"; segment-language.md, "Audiences"):
suppression by address, the suppression list, unsubscribes kept through quarantine,
one recipient per address, the holdout, spreadsheet-safe CSV and repaired send lists.

Every test runs the refresh job production runs (`execute_refresh`, what `segments
run` runs, or the CLI in a subprocess) on real landing files, and reads the published warehouse and files.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

from pipelines.core.files import PAUSE_AT_ENV, PAUSE_DIR_ENV
from pipelines.core.settings import Paths
from pipelines.errors import UserError
from pipelines.runner import execute_refresh
from pipelines.segments.loader import load_project

REPO = Path(__file__).resolve().parent.parent
HEADER = "subscriber_id,email,status,first_name\n"

EVERYONE = """name: Everyone
groups:
  - filters:
      - {field: email, op: is_set}
"""


def make_data(root: Path, subscribers: str, *, audience: str | None = None,
              stamp: str = "20261101T000000Z") -> Paths:
    defs, data = root / "defs", root / "data"
    (defs / "audiences").mkdir(parents=True)
    (defs / "everyone.yaml").write_text(EVERYONE)
    (defs / "audiences" / "all.yaml").write_text(audience or "name: All\ninclude: [everyone]\nfields: [first_name]\n")
    land_snapshot(Paths(defs=defs, data=data), subscribers, stamp)
    return Paths(defs=defs, data=data)


def land_snapshot(paths: Paths, body: str, stamp: str) -> None:
    folder = paths.data / "landing" / "subscribers"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"subscribers_{stamp}.csv").write_text(HEADER + body)


def land_suppressions(paths: Paths, body: str, stamp: str, header: str = "email,reason,suppressed_at\n") -> Path:
    folder = paths.data / "landing" / "suppressions"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"suppressions_{stamp}.csv"
    target.write_text(header + body)
    return target


def run(paths: Paths, as_of: str) -> None:
    with dg.instance_for_test() as instance:
        execute_refresh(paths, as_of=as_of, instance=instance)


def query(paths: Paths, sql: str) -> list[tuple]:
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


def recipients(paths: Paths, audience: str = "all") -> list[tuple]:
    return query(paths, f"SELECT subscriber_id, email, \"group\" FROM recipients WHERE audience = '{audience}' "
                        "ORDER BY subscriber_id")


def exported_ids(paths: Paths, audience: str = "all", name: str = "recipients.parquet") -> list[str]:
    return pq.read_table(paths.data / "audiences" / audience / name).column("subscriber_id").to_pylist()


# -- suppression by address -----------------------------------------------------------------


def test_an_address_unsubscribed_under_one_id_is_not_mailed_under_another(tmp_path):
    paths = make_data(tmp_path, "s01,dup@example.com,unsubscribed,A\n"
                                "s02,dup@example.com,active,B\n"
                                "s03,Bob@Example.com,complained,C\n"
                                "s04,  bob@example.com ,active,D\n"
                                "s05,ok@example.com,active,E\n")
    run(paths, "2026-11-02T00:00:00Z")
    assert recipients(paths) == [("s05", "ok@example.com", "send")]
    assert exported_ids(paths) == ["s05"]
    rows = query(paths, "SELECT email, reason, source FROM suppressions ORDER BY email")
    assert rows == [("bob@example.com", "complained", "snapshot"), ("dup@example.com", "unsubscribed", "snapshot")]


def test_one_recipient_per_address_keeps_the_smallest_subscriber_id(tmp_path):
    paths = make_data(tmp_path, "s20,Same@Example.com,active,B\n"
                                "s10,same@example.com,active,A\n"
                                "s30,other@example.com,active,C\n")
    run(paths, "2026-11-02T00:00:00Z")
    assert [r[0] for r in recipients(paths)] == ["s10", "s30"]


# -- the suppression list -------------------------------------------------------------------


def test_the_suppression_list_suppresses_in_every_later_run(tmp_path):
    paths = make_data(tmp_path, "s1,ann@example.com,active,A\ns2,bo@example.com,active,B\n"
                                "s3,cy@example.com,active,C\n")
    landed = land_suppressions(paths, " ANN@example.com ,legal request,2026-10-01T00:00:00Z\n"
                                      ",no address,\n"
                                      "cy@example.com,typo date,yesterday\n", "20261101T010000Z")
    run(paths, "2026-11-02T00:00:00Z")
    assert [r[0] for r in recipients(paths)] == ["s2"]
    assert query(paths, "SELECT email, reason, source, suppressed_at::VARCHAR FROM suppressions ORDER BY email") == [
        ("ann@example.com", "legal request", landed.name, "2026-10-01 00:00:00"),
        ("cy@example.com", query(paths, "SELECT reason FROM suppressions WHERE email = 'cy@example.com'")[0][0],
         landed.name, None),
    ]
    # Bad rows are quarantined (the one with an address still suppresses, and says so).
    reasons = dict(query(paths, "SELECT row_number, reason FROM quarantine WHERE file = "
                                f"'{landed.name}' ORDER BY row_number"))
    assert "required but missing" in reasons[2] and "still suppresses address 'cy@example.com'" in reasons[3]

    # The landing file goes away and new snapshots come: the addresses stay suppressed.
    landed.unlink()
    land_snapshot(paths, "s1,ann@example.com,active,A\ns2,bo@example.com,active,B\ns3,cy@example.com,active,C\n"
                         "s4,di@example.com,active,D\n", "20261103T000000Z")
    run(paths, "2026-11-04T00:00:00Z")
    assert [r[0] for r in recipients(paths)] == ["s2", "s4"]
    assert exported_ids(paths) == ["s2", "s4"]


def test_a_new_suppression_file_alone_changes_the_send_list(tmp_path):
    paths = make_data(tmp_path, "s1,ann@example.com,active,A\ns2,bo@example.com,active,B\n")
    run(paths, "2026-11-02T00:00:00Z")
    assert exported_ids(paths) == ["s1", "s2"]
    land_suppressions(paths, "bo@example.com\n", "20261101T020000Z", header="email\n")
    run(paths, "2026-11-02T00:00:00Z")  # same as_of, same snapshot: not "unchanged"
    assert exported_ids(paths) == ["s1"]


def test_a_suppression_file_that_cannot_be_read_is_rejected(tmp_path):
    paths = make_data(tmp_path, "s1,ann@example.com,active,A\n")
    land_suppressions(paths, "ann@example.com\n", "20261101T020000Z", header="address\n")
    with pytest.raises(UserError, match="missing required column 'email'"):
        run(paths, "2026-11-02T00:00:00Z")
    assert (paths.data / "rejected" / "suppressions").is_dir()


# -- an unsubscribe is never lost -----------------------------------------------------------


def test_a_quarantined_unsubscribe_still_suppresses(tmp_path):
    paths = make_data(tmp_path, "s60,s60@example.com,active,A\n"
                                "s60,,unsubscribed,A\n"
                                "s61,,bounced,B\n"
                                "s62,s62@example.com,active,C\n"
                                ",S61@example.com,complained,D\n"
                                "s63,s63@example.com,active,E\n"
                                "s64,s64@example.com,unsubscribed,F\n"
                                "s64,s64@example.com,active,F\n")
    run(paths, "2026-11-02T00:00:00Z")
    # s60: its quarantined row (no email) holds it; s64: its superseded row does.
    assert [r[0] for r in recipients(paths)] == ["s62", "s63"]
    reasons = dict(query(paths, "SELECT row_number, reason FROM quarantine ORDER BY row_number"))
    assert "still suppresses subscriber 's60'" in reasons[2]
    assert "still suppresses address 'S61@example.com'" in reasons[5]
    assert "still suppresses subscriber 's64'" in reasons[7]
    assert ("s60@example.com",) in query(paths, "SELECT email FROM suppressions")


# -- holdout --------------------------------------------------------------------------------


def _held(salt: str, subscriber_id: str, percent: float) -> bool:
    digest = hashlib.sha256((salt + ":" + subscriber_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 10000 < percent * 100


def test_holdout_is_the_formula_and_is_kept_out_of_the_send_files(tmp_path):
    rows = "".join(f"s{i:03d},p{i}@example.com,active,N{i}\n" for i in range(200))
    paths = make_data(tmp_path, rows, audience="name: All\ninclude: [everyone]\nholdout: {percent: 20, salt: bf26}\n")
    run(paths, "2026-11-02T00:00:00Z")
    got = recipients(paths)
    expected = {f"s{i:03d}": "holdout" if _held("bf26", f"s{i:03d}", 20) else "send" for i in range(200)}
    assert {sid: group for sid, _, group in got} == expected
    assert 10 < sum(g == "holdout" for g in expected.values()) < 70
    send = [s for s, g in expected.items() if g == "send"]
    held = [s for s, g in expected.items() if g == "holdout"]
    assert exported_ids(paths) == send
    with open(paths.data / "audiences" / "all" / "recipients.csv", newline="") as f:
        assert [r["subscriber_id"] for r in csv.DictReader(f)] == send
    assert exported_ids(paths, name="holdout.parquet") == held
    manifest = json.loads((paths.data / "audiences" / "all" / "manifest.json").read_text())
    assert manifest["rows"] == len(send) and manifest["holdout_rows"] == len(held)
    assert set(manifest["files"]) == {"recipients.parquet", "recipients.csv", "holdout.parquet", "holdout.csv"}

    # Dropping the holdout drops its files.
    (paths.defs / "audiences" / "all.yaml").write_text("name: All\ninclude: [everyone]\n")
    run(paths, "2026-11-03T00:00:00Z")
    assert not (paths.data / "audiences" / "all" / "holdout.csv").exists()
    assert len(exported_ids(paths)) == 200


@pytest.mark.parametrize(("body", "message"), [
    ("holdout: {percent: 60, salt: x}", "holdout 'percent' must be a number from 0 to 50"),
    ("holdout: {percent: -1, salt: x}", "holdout 'percent' must be a number from 0 to 50"),
    ("holdout: {percent: ten, salt: x}", "holdout 'percent' must be a number from 0 to 50"),
    ("holdout: {percent: 10}", "missing required key 'salt'"),
    ("holdout: {percent: 10, salt: x, seed: 1}", "unknown key 'seed'"),
    ("fields: [first_name, run_id]", "field 'run_id' clashes with the recipients column"),
    ("fields: [audience]", "field 'audience' clashes with the recipients column"),
    ("fields: [group]", "field 'group' clashes with the recipients column"),
])
def test_validate_refuses_a_bad_holdout_and_reserved_fields(tmp_path, body, message):
    defs = tmp_path / "defs"
    (defs / "audiences").mkdir(parents=True)
    (defs / "_fields.yaml").write_text("subscriber_fields:\n  run_id: string\n  audience: string\n  group: string\n")
    (defs / "everyone.yaml").write_text(EVERYONE)
    (defs / "audiences" / "all.yaml").write_text(f"name: All\ninclude: [everyone]\n{body}\n")
    _, problems = load_project(defs)
    assert [str(p) for p in problems if message in str(p)], problems
    line = next(str(p) for p in problems if message in str(p))
    assert line.startswith(f"{defs / 'audiences' / 'all.yaml'}:3:")


# -- campaign files -------------------------------------------------------------------------


def test_csv_cells_that_a_spreadsheet_would_run_are_defused(tmp_path):
    paths = make_data(tmp_path, 's1,a@example.com,active,"=HYPERLINK(""http://x"")"\n'
                                "s2,b@example.com,active,+1\n"
                                "s3,c@example.com,active,-2\n"
                                "s4,d@example.com,active,@SUM(A1)\n"
                                "s5,e@example.com,active,Plain\n")
    run(paths, "2026-11-02T00:00:00Z")
    folder = paths.data / "audiences" / "all"
    with open(folder / "recipients.csv", newline="") as f:
        names = [r["first_name"] for r in csv.DictReader(f)]
    assert names == ["'=HYPERLINK(\"http://x\")", "'+1", "'-2", "'@SUM(A1)", "Plain"]
    assert pq.read_table(folder / "recipients.parquet").column("first_name").to_pylist() == [
        '=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "Plain"]


def test_the_next_run_removes_stale_export_temporaries(tmp_path):
    paths = make_data(tmp_path, "s1,a@example.com,active,A\n")
    run(paths, "2026-11-02T00:00:00Z")
    stale = paths.data / "audiences" / "all" / ".recipients.parquet.99999.tmp"
    stale.write_text("subscriber_id,email\ns1,a@example.com\n")
    run(paths, "2026-11-02T00:00:00Z")  # even a run with nothing to do
    assert not stale.exists()


def _segments(paths: Paths, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", *args, "--defs", str(paths.defs), "--data", str(paths.data)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow  # SIGKILLs a `segments run`
def test_a_crash_after_the_swap_is_repaired_by_the_next_run_even_with_nothing_to_do(tmp_path):
    paths = make_data(tmp_path, "s1,a@example.com,active,A\ns2,b@example.com,active,B\n")
    first = _segments(paths, "run", "--as-of", "2026-11-02T00:00:00Z")
    assert first.wait(timeout=300) == 0, first.communicate()
    assert exported_ids(paths) == ["s1", "s2"]

    # s2 unsubscribes; the run is killed right after the warehouse swap.
    land_snapshot(paths, "s1,a@example.com,active,A\ns2,b@example.com,unsubscribed,B\n", "20261102T000000Z")
    markers = tmp_path / "markers"
    child = _segments(paths, "run", "--as-of", "2026-11-03T00:00:00Z",
                      env={PAUSE_AT_ENV: "publish:swapped", PAUSE_DIR_ENV: str(markers)})
    marker = markers / "publish_swapped.reached"
    deadline = time.monotonic() + 300
    while not marker.exists():
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the run never reached publish:swapped"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)
    assert recipients(paths) == [("s1", "a@example.com", "send")]  # the warehouse has the new run
    assert exported_ids(paths) == ["s1", "s2"]  # the files still have the old one

    again = _segments(paths, "run", "--as-of", "2026-11-03T00:00:00Z")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert exported_ids(paths) == ["s1"]
    manifest = json.loads((paths.data / "audiences" / "all" / "manifest.json").read_text())
    assert manifest["run_id"] == query(paths, "SELECT run_id FROM published_state")[0][0]


def test_the_suppression_check_catches_a_bug_in_the_recipients_own_rule(tmp_path, monkeypatch):
    import numpy as np

    import pipelines.publish.audiences as audiences

    paths = make_data(tmp_path, "s1,a@example.com,active,A\ns2,A@example.com,bounced,B\ns3,c@example.com,active,C\n")
    land_suppressions(paths, "c@example.com\n", "20261101T020000Z", header="email\n")
    real = audiences.sendable

    def everyone_may_be_mailed(subscribers, suppressions):  # the bug: ignores statuses and the list
        _, codes = real(subscribers, suppressions)
        return np.ones(subscribers.num_rows, dtype=bool), codes

    monkeypatch.setattr(audiences, "sendable", everyone_may_be_mailed)
    with pytest.raises(UserError, match="blocking check 'suppression' failed on audience_recipients"):
        run(paths, "2026-11-02T00:00:00Z")
    assert not paths.warehouse.exists()


def test_suppression_files_in_every_landing_format(tmp_path):
    import gzip

    import pyarrow as pa

    paths = make_data(tmp_path, "".join(f"s{i},p{i}@example.com,active,N\n" for i in range(5)))
    folder = paths.data / "landing" / "suppressions"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"email": ["P0@example.com"]}), folder / "crm_20261101T010000Z.parquet")
    (folder / "crm_20261101T020000Z.jsonl").write_text(
        '{"email": "p1@example.com", "reason": "complaint", "suppressed_at": "2026-10-02T00:00:00Z"}\n')
    with gzip.open(folder / "crm_20261101T030000Z.csv.gz", "wt") as f:
        f.write("Email\np2@example.com\n")
    run(paths, "2026-11-02T00:00:00Z")
    assert exported_ids(paths) == ["s3", "s4"]
    assert [r[0] for r in query(paths, "SELECT source FROM suppressions ORDER BY email")] == [
        "crm_20261101T010000Z.parquet", "crm_20261101T020000Z.jsonl", "crm_20261101T030000Z.csv.gz"]
