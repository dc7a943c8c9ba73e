"""Builders shared by the publish tests (and their child processes).

Engine and ingest are built by others; these tests feed the publish step with
hand-made pyarrow inputs instead, so every expectation is computed by hand.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.core.settings import Paths
from pipelines.segments.fields import FieldCatalog
from pipelines.segments.model import Audience, FieldFilter, Group, Project, Segment

CATALOG = FieldCatalog.with_custom({"loyalty_points": "integer", "vip": "boolean"}, {})


def make_paths(root: Path) -> Paths:
    return Paths(defs=root / "defs", data=root / "data")


def make_segment(key: str, name: str | None = None) -> Segment:
    # The filter is never evaluated here: membership is handed in directly.
    return Segment(key=key, name=name or key.replace("_", " ").title(),
                   groups=(Group(filters=(FieldFilter(field="state", op="is", value="NY"),)),))


def make_project(segment_keys, audiences: dict[str, dict] | None = None) -> Project:
    return Project(
        catalog=CATALOG,
        segments={k: make_segment(k) for k in segment_keys},
        audiences={k: Audience(key=k, name=k.title(), **spec) for k, spec in (audiences or {}).items()},
    )


def subscribers_table(statuses: dict[str, str], **extra_columns) -> pa.Table:
    """One row per subscriber id, typed by the catalog; other fields filled predictably."""
    ids = sorted(statuses)
    columns = {
        "subscriber_id": ids,
        "email": [f"{i}@example.com" for i in ids],
        "status": [statuses[i] for i in ids],
        "first_name": [f"Name {i}" for i in ids],
        "city": ["New York" if n % 2 else "Boston" for n in range(len(ids))],
        "tags": [["webinar", "vip"] if n % 3 == 0 else [] for n in range(len(ids))],
        "created_at": [datetime(2025, 1, 1 + n % 28, 12, 30) for n in range(len(ids))],
        "loyalty_points": [n * 10 for n in range(len(ids))],
        "vip": [n % 2 == 0 for n in range(len(ids))],
    }
    columns.update(extra_columns)
    schema = CATALOG.subscriber_schema()
    arrays = []
    for f in schema:
        values = columns.get(f.name, [None] * len(ids))
        arrays.append(pa.array(values, f.type))
    table = pa.Table.from_arrays(arrays, schema=schema)
    for name, values in extra_columns.items():
        if name not in schema.names:
            table = table.append_column(name, pa.array(values, pa.string()))
    return table


def membership_table(members: dict[str, list[str]]) -> pa.Table:
    pairs = sorted((seg, sid) for seg, ids in members.items() for sid in ids)
    return pa.table({"segment": pa.array([p[0] for p in pairs], pa.string()),
                     "subscriber_id": pa.array([p[1] for p in pairs], pa.string())})


def fingerprint_of(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def stage_args(paths: Paths, project: Project, as_of: datetime, members: dict[str, list[str]],
               statuses: dict[str, str], *, run_id: str | None = None, fingerprint: str | None = None) -> dict:
    """The arguments of `publish_version` for one run, made the way `pipelines.run.execute`
    makes them after evaluation: the run's flags in its workspace, history files
    (extend_history) on the published version and the recipients file (write_recipients)."""
    from pipelines.core.flags import membership_to_flags, sort_by_id
    from pipelines.publish.audiences import Suppressions, suppressions_table, write_recipients
    from pipelines.publish.flag_history import extend_history
    from pipelines.publish.history_files import write_flags
    from pipelines.publish.runlog import RunRecord
    from pipelines.publish.state import current_state
    from pipelines.run.params import Workspace

    run_id = run_id or f"run-{as_of:%Y%m%dT%H%M%S}"
    subscribers = subscribers_table(statuses)
    ids = sort_by_id(subscribers.select(["subscriber_id"])).column("subscriber_id")
    flags = membership_to_flags(membership_table(members), ids, keys=project.segments)
    ws = Workspace(paths, run_id)
    ws.dir.mkdir(parents=True, exist_ok=True)
    write_flags(flags, ws.flags_file)
    delta = extend_history(current_state(paths), flags, run_id, as_of, segments=project.segments,
                           out_dir=ws.history_dir)
    write_recipients(project, flags, subscribers, run_id, ws.recipients_file)
    record = RunRecord(run_id=run_id, as_of=as_of, started_at=as_of,
                       snapshot=f"subscribers_{as_of:%Y%m%dT%H%M%S}Z.csv", snapshot_rows=len(statuses),
                       fingerprint=fingerprint or fingerprint_of(sorted(project.segments), members, statuses,
                                                                 sorted(project.audiences)))
    return dict(
        project=project, record=record, workdir=ws.dir, history=delta, subscribers=subscribers,
        suppressions=suppressions_table(subscribers, Suppressions()),
        compiled_sql={k: f"SELECT subscriber_id FROM subscribers /* {k} */" for k in project.segments},
    )


def publish(paths: Paths, project: Project, as_of: datetime, members: dict[str, list[str]],
            statuses: dict[str, str], *, run_id: str | None = None, fingerprint: str | None = None,
            keep_versions: int = 5):
    """Publish one run the way `pipelines.run.execute` does after evaluation (the steps
    `segments run` and Dagster call): publish_version on the run's files (stage_args)."""
    from pipelines.publish.warehouse import publish_version

    return publish_version(paths, **stage_args(paths, project, as_of, members, statuses, run_id=run_id,
                                               fingerprint=fingerprint), keep_versions=keep_versions)


def violations(recipients: pa.Table, subscribers: pa.Table, suppressions=None) -> int:
    """`suppression_violations` of recipients written as a run writes them: a Parquet file."""
    from pipelines.publish.audiences import suppression_violations

    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "recipients.parquet"
        pq.write_table(recipients, target)
        return suppression_violations(target, subscribers, suppressions)


def query(paths: Paths, sql: str, params=None) -> list[tuple]:
    """What an analyst does: open the warehouse read-only, query, close."""
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


# --- Generated runs and child processes for the concurrency and crash tests ---

SCENARIO_SEGMENTS = ["alpha", "beta", "gamma", "delta"]
SCENARIO_AUDIENCES = {
    "weekly": {"include": ("alpha", "beta"), "exclude": ("delta",), "fields": ("first_name", "tags")},
    "vip": {"include": ("gamma",), "fields": ("loyalty_points", "vip")},
}


def scenario_project() -> Project:
    return make_project(SCENARIO_SEGMENTS, SCENARIO_AUDIENCES)


def scenario_run(n: int, size: int = 400) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Run n of a reproducible sequence: memberships and statuses drift between runs."""
    import random

    rng = random.Random(n)
    ids = [f"sub{i:05d}" for i in range(size)]
    statuses = {i: rng.choices(["active", "unsubscribed", "bounced", "complained"], [85, 8, 4, 3])[0]
                for i in ids}
    members = {seg: sorted(rng.sample(ids, rng.randint(size // 10, size // 2))) for seg in SCENARIO_SEGMENTS}
    return members, statuses


def scenario_as_of(n: int) -> datetime:
    return datetime(2026, 3, 1) + (datetime(2026, 3, 2) - datetime(2026, 3, 1)) * n


def publish_scenario_run(paths: Paths, n: int, size: int = 400, keep_versions: int = 5):
    members, statuses = scenario_run(n, size)
    return publish(paths, scenario_project(), scenario_as_of(n), members, statuses, run_id=f"run{n:03d}",
                   keep_versions=keep_versions)


def child_publish(data_dir: str, first: int, last: int, size: int) -> None:
    """Entry point of a publishing child process (killed by the crash tests)."""
    paths = Paths(defs=Path(data_dir) / "defs", data=Path(data_dir))
    for n in range(first, last + 1):
        publish_scenario_run(paths, n, size)


READER_CHECKS = {
    # segments.members agrees with segment_membership within one read
    "segment_counts": """SELECT count(*) FROM segments s
                         WHERE members <> (SELECT count(*) FROM segment_membership m WHERE m.segment = s.segment)""",
    # no non-active subscriber among recipients
    "suppression": """SELECT count(*) FROM recipients r LEFT JOIN subscribers s USING (subscriber_id)
                      WHERE s.status IS DISTINCT FROM 'active'""",
    # every relation belongs to the same run
    "one_run": """SELECT (SELECT count(*) FROM recipients WHERE run_id <> p.run_id)
                         + (SELECT count(*) FROM segment_sizes z JOIN segments g USING (segment)
                            WHERE z.run_id = p.run_id AND z.members <> g.members)
                         + CASE WHEN (SELECT max(as_of) FROM segment_sizes) = p.as_of THEN 0 ELSE 1 END
                  FROM published_state p""",
}


def reader_loop(warehouse: str, stop_file: str, result_file: str) -> None:
    """Entry point of an analyst-like reader: open read-only per query, check consistency, close."""
    import os
    import time
    import traceback

    reads, errors, inconsistent, versions = 0, [], [], set()
    while not os.path.exists(stop_file):
        try:
            with duckdb.connect(warehouse, read_only=True) as con:
                version = con.execute("SELECT version FROM published_state").fetchall()[0][0]
                for name, sql in READER_CHECKS.items():
                    bad = con.execute(sql).fetchall()[0][0]
                    if bad:
                        inconsistent.append(f"{version} {name}: {bad}")
                versions.add(version)
            reads += 1
        except Exception:  # any error is a failure of the publish design: report it
            errors.append(traceback.format_exc(limit=3))
        time.sleep(0.005)
    Path(result_file).write_text(json.dumps({
        "reads": reads, "errors": errors, "inconsistent": inconsistent, "versions": sorted(versions)}))
