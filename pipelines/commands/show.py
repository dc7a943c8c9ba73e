"""`segments show KEY`: definition text, compiled SQL, current size and size history."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..core.clock import utc_now
from ..core.settings import Paths
from ..errors import UserError
from ..publish.state import current_state
from ..run.prepare import load_valid_project
from ..segments.to_sql import compile_segment
from ..warehouse_query import open_warehouse
from .common import load_definitions, published_segments, unknown_segment_message


@dataclass
class SizePoint:
    run_id: str
    as_of: datetime
    members: int
    entered: int
    exited: int


@dataclass
class ShowResult:
    segment: str
    name: str | None
    description: str | None
    path: str | None  # the definition file (None when only the published state knows it)
    definition: str | None  # the YAML text as written
    sql: str | None  # compiled for DuckDB at `sql_as_of` (None when the definition has problems)
    sql_as_of: datetime | None
    problems: list[str]
    members: int | None  # in the last published run (None when not published)
    run_id: str | None
    run_as_of: datetime | None
    depends_on: list[str]
    used_by: list[str]  # segments and audiences reading it
    sizes: list[SizePoint]  # oldest first, at most the last `runs`
    notes: list[str] = field(default_factory=list)


def show(paths: Paths, key: str, *, runs: int) -> ShowResult:
    defs = load_definitions(paths)
    state = current_state(paths)
    with open_warehouse(paths, required=False) as con:
        published = published_segments(con)
        if key not in defs.files and key not in published:
            raise UserError(unknown_segment_message(key, {*defs.files, *published}))
        sizes: list[SizePoint] = []
        if con is not None:
            rows = con.execute(
                """SELECT run_id, as_of, members, entered, exited FROM segment_sizes
                   WHERE segment = ? ORDER BY as_of DESC, run_id DESC LIMIT ?""",
                [key, runs],
            ).fetchall()
            sizes = [SizePoint(*r) for r in reversed(rows)]

    file = defs.files.get(key)
    segment = defs.project.segments.get(key)
    sql_as_of = state.as_of if state is not None else utc_now()
    result = ShowResult(
        segment=key,
        name=segment.name if segment else (published.get(key) or {}).get("name"),
        description=segment.description if segment else None,
        path=str(file) if file else None,
        definition=Path(file).read_text(encoding="utf-8", errors="replace") if file else None,
        sql=compile_segment(defs.project, key, sql_as_of) if segment else None,
        sql_as_of=sql_as_of if segment else None,
        problems=[str(p) for p in defs.problems_of(file)] if file else [],
        members=(published.get(key) or {}).get("members"),
        run_id=state.run_id if state is not None and key in published else None,
        run_as_of=state.as_of if state is not None and key in published else None,
        depends_on=segment.references() if segment else [],
        used_by=sorted(k for k, s in defs.project.segments.items() if key in s.references())
        + sorted(f"audience {k}" for k, a in defs.project.audiences.items() if key in a.include + a.exclude),
        sizes=sizes,
    )
    if file is None:
        result.notes.append("no definition file any more: the next run closes its memberships")
        result.sql = published[key]["sql"]  # not in the definitions, so published
        result.sql_as_of = state.as_of if state is not None else None
    elif segment is None:
        result.notes.append("the definition has problems (below); `segments validate` lists them all"
                            if result.problems else "it reads a segment whose definition has problems; "
                            "`segments validate` lists them")
    elif key not in published:
        result.notes.append("not published yet: `segments run` evaluates it")
    elif published[key]["definition_sha256"] != segment.definition_sha256():
        result.notes.append("edited since the last run: `segments diff " + key + "` shows who would enter and leave")
    return result


def compile_sql(paths: Paths, key: str, as_of: datetime, dialect: str) -> str:
    """`segments compile KEY`: the SQL query a segment compiles to."""
    project = load_valid_project(paths)
    if key not in project.segments:
        raise UserError(unknown_segment_message(key, project.segments))
    return compile_segment(project, key, as_of, dialect=dialect)
