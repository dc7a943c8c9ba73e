"""`segments list`: published segments with their size and change, beside the definitions folder."""

from __future__ import annotations

from ..core.settings import Paths
from ..errors import UserError
from ..warehouse_query import open_warehouse
from .common import load_definitions


def segment_listing(paths: Paths) -> list[dict]:
    """Every published segment plus every defined one: current members, change
    since the previous run, the last run, and how the definition file relates
    to what was published (`definition`: unchanged | edited | not run yet |
    deleted | has problems)."""
    with open_warehouse(paths) as con:
        run_id, as_of = con.execute("SELECT run_id, as_of FROM published_state").fetchall()[0]
        finished = con.execute("SELECT max(finished_at) FROM runs WHERE run_id = ?", [run_id]).fetchall()[0][0]
        previous_run = con.execute(
            "SELECT run_id FROM segment_sizes WHERE as_of < ? ORDER BY as_of DESC, run_id DESC LIMIT 1", [as_of]
        ).fetchall()
        previous_run_id = previous_run[0][0] if previous_run else None
        rows = con.execute(
            """
            SELECT s.segment, s.name, s.members, s.entered, s.exited, s.definition_sha256,
                   p.members AS previous_members
            FROM segments s
            LEFT JOIN segment_sizes p ON p.segment = s.segment AND p.run_id = $previous
            ORDER BY s.segment
            """,
            {"previous": previous_run_id},
        ).fetchall()
    listing = []
    for segment, name, members, entered, exited, sha, previous in rows:
        listing.append({
            "segment": segment, "name": name, "members": members,
            # None when the segment is new in the last run (or that run is the first)
            "change": None if previous is None else members - previous,
            "previous_members": previous, "entered": entered, "exited": exited,
            "last_run_id": run_id, "last_run_as_of": as_of, "last_run_finished_at": finished,
            "previous_run_id": previous_run_id, "definition": "unchanged", "_sha": sha,
        })
    _add_definitions(paths, listing)
    for row in listing:
        row.pop("_sha", None)
    return listing


def _add_definitions(paths: Paths, listing: list[dict]) -> None:
    """Compare with the definitions folder, when there is one."""
    try:
        defs = load_definitions(paths)
    except UserError:
        for row in listing:
            row["definition"] = None  # no definitions folder to compare with
        return
    project, files, published = defs.project, defs.files, {row["segment"] for row in listing}
    for row in listing:
        key = row["segment"]
        if key not in files:
            row["definition"] = "deleted"
        elif key not in project.segments:
            row["definition"] = "has problems"
        elif project.segments[key].definition_sha256() != row["_sha"]:
            row["definition"] = "edited"
    for key in sorted(set(files) - set(published)):
        segment = project.segments.get(key)
        listing.append({
            "segment": key, "name": segment.name if segment else None, "members": None, "change": None,
            "previous_members": None, "entered": None, "exited": None, "last_run_id": None,
            "last_run_as_of": None, "last_run_finished_at": None, "previous_run_id": None,
            "definition": "not run yet" if segment else "has problems",
        })
    listing.sort(key=lambda row: row["segment"])
