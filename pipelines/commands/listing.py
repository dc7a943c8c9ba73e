"""`segments list`: published segments with their size and change, beside the definitions folder."""

from __future__ import annotations

from ..core.settings import Paths
from ..errors import UserError
from ..warehouse_query import open_warehouse
from .common import Definitions, load_definitions

# A row of `segments list --json`, keys in print order.
EMPTY_ROW = dict.fromkeys((
    "segment", "name", "members", "change", "previous_members", "entered", "exited", "last_run_id",
    "last_run_as_of", "last_run_finished_at", "previous_run_id", "definition"))


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
    try:
        defs: Definitions | None = load_definitions(paths)
    except UserError:
        defs = None  # no definitions folder to compare with
    listing = [{
        "segment": segment, "name": name, "members": members,
        # None when the segment is new in the last run (or that run is the first)
        "change": None if previous is None else members - previous,
        "previous_members": previous, "entered": entered, "exited": exited,
        "last_run_id": run_id, "last_run_as_of": as_of, "last_run_finished_at": finished,
        "previous_run_id": previous_run_id, "definition": _definition(defs, segment, sha),
    } for segment, name, members, entered, exited, sha, previous in rows]
    if defs is not None:
        for key in defs.files.keys() - {row["segment"] for row in listing}:
            segment = defs.project.segments.get(key)
            listing.append({**EMPTY_ROW, "segment": key, "name": segment.name if segment else None,
                            "definition": "not run yet" if segment else "has problems"})
    return sorted(listing, key=lambda row: row["segment"])


def _definition(defs: Definitions | None, key: str, published_sha: str) -> str | None:
    if defs is None:
        return None
    if key not in defs.files:
        return "deleted"
    if key not in defs.project.segments:
        return "has problems"
    return "edited" if defs.project.segments[key].definition_sha256() != published_sha else "unchanged"
