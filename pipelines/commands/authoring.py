"""`segments new` and `segments delete`: the only commands that write definitions."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML

from ..core.settings import Paths
from ..errors import UserError
from ..segments.definition_rules import KEY_PATTERN, NAME_MAX
from ..segments.loader import load_segment_file
from ..warehouse_query import open_warehouse
from .common import load_definitions, published_segments, segment_files, unknown_segment_message

STARTER = """\
# Segment "{key}" (its key is the file name). Next:
#   {validate} check every definition
#   {preview} who would match now (writes nothing)
#   {diff} who would enter and leave at the next run
name: {name}
{description}
# How the groups combine: any (OR, the default) | all (AND).
match: any
groups:
  # How a group's filters combine: all (AND, the default) | any (OR) | none (no filter holds).
  - match: all
    filters:
      # Field filters: {{field: NAME, op: OP, value: VALUE}}. Text comparisons ignore case;
      # a missing value never satisfies a positive operator (is, in, gt, has_any, ...).
      - {{field: status, op: is, value: active}}
      # - {{field: state, op: in, value: [NY, NJ]}}
      # - {{field: tags, op: has_any, value: [webinar-attendee]}}
      # - {{field: created_at, op: in_last_days, value: 30}}
      #
      # Event filters count the subscriber's events up to the run's as_of.
      # - event: purchase
      #   op: performed              # performed | not_performed
      #   in_last_days: 30           # optional window
      #   where:                     # optional, over the event's own fields
      #     - {{field: amount, op: gte, value: 50}}
      #   count: {{op: gte, value: 1}}  # optional: gt | gte | lt | lte | is
      #
      # Segment filters: membership of another segment in the same run.
      # - {{segment: {other}, op: is}}   # or op: is_not
"""


def starter_text(key: str, name: str, description: str | None, other: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar.
    desc = (f"description: {json.dumps(description, ensure_ascii=False)}" if description
            else "# description: What this segment is for.   (optional)")
    commands = ["segments validate", f"segments preview {key}", f"segments diff {key}"]
    width = max(map(len, commands)) + 2
    validate, preview, diff = (c.ljust(width) for c in commands)
    return STARTER.format(key=key, name=json.dumps(name, ensure_ascii=False), description=desc, other=other,
                          validate=validate, preview=preview, diff=diff)


def new_segment(paths: Paths, key: str, name: str | None = None, description: str | None = None) -> Path:
    """Write a valid, commented starter definition `DEFS/KEY.yaml`; refuse a taken or invalid key."""
    if not KEY_PATTERN.match(key):
        raise UserError(f"invalid segment key '{key}': use lowercase letters, digits and _, starting with a "
                        "letter, at most 63 characters (the key is the file name)")
    name = (key.replace("_", " ").strip().capitalize() or key) if name is None else name.strip()
    if not name or len(name) > NAME_MAX:
        raise UserError(f"--name must be 1 to {NAME_MAX} characters")
    defs = load_definitions(paths)
    if key in defs.files:
        raise UserError(f"segment '{key}' already exists: {defs.files[key]}")
    target = Path(paths.defs) / f"{key}.yaml"
    if target.exists():  # e.g. a folder of that name
        raise UserError(f"{target} already exists")
    text = starter_text(key, name, description.strip() if description else None,
                        other=min(defs.project.segments, default="other_segment"))
    # Validate before anything is written: a starter must pass `segments validate`.
    with tempfile.TemporaryDirectory() as scratch:
        draft = Path(scratch) / f"{key}.yaml"
        draft.write_text(text, encoding="utf-8")
        _, problems = load_segment_file(draft, defs.project.catalog, defs.project.segments)
    if problems:
        raise UserError(f"cannot write a valid starter: {problems[0].message}")
    try:
        with open(target, "x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        raise UserError(f"segment '{key}' already exists: {target}") from None
    return target


@dataclass
class DeletePlan:
    path: Path
    members: int | None  # current published members, if published


def _load_quietly(path: Path):
    try:
        return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8-sig"))
    except Exception:  # a broken file is reported by `segments validate`, not here
        return None


def _segment_refs(data) -> set[str]:
    refs: set[str] = set()
    groups = data.get("groups") if isinstance(data, dict) else None
    for group in groups if isinstance(groups, list) else []:
        filters = group.get("filters") if isinstance(group, dict) else None
        for f in filters if isinstance(filters, list) else []:
            if isinstance(f, dict) and isinstance(f.get("segment"), str):
                refs.add(f["segment"])
    return refs


def _audience_refs(data) -> set[str]:
    slots = [data.get(slot) for slot in ("include", "exclude")] if isinstance(data, dict) else []
    values = [v for value in slots for v in (value if isinstance(value, list) else [value])]
    return {v for v in values if isinstance(v, str)}


def referrers(paths: Paths, key: str) -> list[str]:
    """Every segment and audience file that references segment `key`, read
    leniently (a file with other problems still counts)."""
    found = []
    for other, path in sorted(segment_files(paths.defs).items()):
        if other != key and key in _segment_refs(_load_quietly(path)):
            found.append(f"segment {other} ({path})")
    for other, path in sorted(segment_files(paths.defs, "audience").items()):
        if key in _audience_refs(_load_quietly(path)):
            found.append(f"audience {other} ({path})")
    return found


def plan_delete(paths: Paths, key: str) -> DeletePlan:
    files = segment_files(paths.defs)
    with open_warehouse(paths, required=False) as con:
        published = published_segments(con)
    if key not in files:
        if key in published:
            raise UserError(f"segment '{key}' has no definition file any more (it is already deleted); "
                            "the next `segments run` closes its memberships")
        raise UserError(unknown_segment_message(key, files))
    using = referrers(paths, key)
    if using:
        raise UserError(f"cannot delete segment '{key}': it is used by {'; '.join(using)}. "
                        "Remove those references first")
    return DeletePlan(path=files[key], members=(published.get(key) or {}).get("members"))


def delete_segment(plan: DeletePlan) -> None:
    try:
        os.remove(plan.path)
    except FileNotFoundError:
        raise UserError(f"{plan.path} is already gone") from None
