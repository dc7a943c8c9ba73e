"""Definition files -> `Project` + every problem, in one pass.

Discovery follows segment-language.md, "Files": every `*.yaml` below the folder;
files under `audiences/` are audiences, `_` files configuration (only the root
`_fields.yaml` is read: another is a parked draft), hidden files and folders are
skipped. The Project holds only runnable definitions (no problem, none in what
they depend on); callers decide whether problems stop them.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from pydantic import ValidationError

from ..errors import UserError
from .definition_rules import DeclaredFields, read_fields_file
from .fields import FieldCatalog
from .gc_pause import gc_paused
from .model import Audience, Project, Segment
from .problems import Problem, ProblemLog
from .project_rules import check_cycles, check_keys, runnable_audiences, runnable_segments
from .yaml_tree import Data, parse_yaml, read_text

FIELDS_FILE = "_fields.yaml"
AUDIENCES_DIR = "audiences"


@dataclass
class DefinitionFile:
    relative: Path
    path: str  # as shown in problems: str(Path(defs_dir) / relative)
    kind: str  # "segment" | "audience" | "fields" | "ignored"
    parsed: bool = False
    root: Data | None = None

    @cached_property
    def log(self) -> ProblemLog:
        return ProblemLog(self.path)

    @property
    def key(self) -> str:
        return self.relative.name.removesuffix(".yaml")

    def parse(self) -> None:
        text = read_text(Path(self.path), self.log)
        if text is not None:
            self.parsed, self.root = parse_yaml(text, self.log)

    def read(self, model: type[Segment | Audience], declared: DeclaredFields, segments: Collection[str],
             references: list | None = None):  # noqa: ANN201 - the model's type
        """The definition, or None when anything in the file is wrong (all of it reported).
        `segments` are the keys it may reference; `references` collects every
        `{segment: KEY}` with its node (model.py reads this context)."""
        if not self.parsed:
            return None
        if self.root is None:
            needs = "'name' and 'groups'" if model is Segment else "'include'"
            self.log.at(1, 1, f"empty file: {'a segment' if model is Segment else 'an audience'} needs {needs}")
            return None
        context = {"path": self.path, "key": self.key, "log": self.log, "declared": declared,
                   "segments": segments, "references": references if references is not None else [],
                   "scope": "subscriber"}
        try:
            found = model.model_validate(self.root, context=context)
        except ValidationError:
            return None
        return None if self.log.problems else found


def discover(defs_dir: str | os.PathLike) -> list[DefinitionFile]:
    """Every definition file below defs_dir, sorted by relative path, classified."""
    root = Path(defs_dir)
    if not root.exists():
        raise UserError(f"definitions folder not found: {root} (set --defs or SEGMENTS_DEFS)")
    if not root.is_dir():
        raise UserError(f"definitions path is not a folder: {root}")
    found: list[DefinitionFile] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if not name.endswith(".yaml") or name.startswith("."):
                continue
            relative = (Path(folder) / name).relative_to(root)
            if name.startswith("_"):
                kind = "fields" if relative == Path(FIELDS_FILE) else "ignored"
            elif len(relative.parts) > 1 and relative.parts[0] == AUDIENCES_DIR:
                kind = "audience"
            else:
                kind = "segment"
            found.append(DefinitionFile(relative, str(root / relative), kind))
    return sorted(found, key=lambda f: f.relative.parts)


@gc_paused()
def load_project(defs_dir: str | os.PathLike) -> tuple[Project, list[Problem]]:
    """All definitions of a folder: the runnable Project and every problem (sorted)."""
    files = [f for f in discover(defs_dir) if f.kind != "ignored"]
    for f in files:
        f.parse()

    # A file that does not parse declares nothing (its root is None).
    declared = next((read_fields_file(f.log, f.root) for f in files if f.kind == "fields"), DeclaredFields())

    segment_files = [f for f in files if f.kind == "segment"]
    owners, problems = check_keys(((f.key, f.path) for f in segment_files), "segment")
    segments: dict[str, Segment] = {}
    references: dict[str, list] = {}
    for f in segment_files:
        refs: list = []
        segment = f.read(Segment, declared, owners, refs)
        if owners.get(f.key) == f.path:
            references[f.key] = refs
            if segment is not None:
                segments[f.key] = segment
    on_cycle, cycle_problems = check_cycles(references, owners)
    problems += cycle_problems
    segments = runnable_segments({k: s for k, s in segments.items() if k not in on_cycle})

    audience_files = [f for f in files if f.kind == "audience"]
    audience_owners, key_problems = check_keys(((f.key, f.path) for f in audience_files), "audience")
    problems += key_problems
    audiences: dict[str, Audience] = {}
    for f in audience_files:
        audience = f.read(Audience, declared, owners)
        if audience is not None and audience_owners.get(f.key) == f.path:
            audiences[f.key] = audience

    for f in files:
        problems += f.log.problems
    project = Project(catalog=declared.catalog, segments=segments,
                      audiences=runnable_audiences(audiences, segments))
    return project, sorted(problems)


def load_segment_file(path: str | os.PathLike, catalog: FieldCatalog,
                      known_segments: Collection[str] | Mapping[str, Segment]) -> tuple[Segment | None, list[Problem]]:
    """One segment file anywhere on disk (e.g. `segments preview FILE`), keyed by its stem.
    `known_segments` are the keys it may reference; given the project's `segments`
    mapping, cycles through them are caught too (a reference to itself always is)."""
    file_path = Path(path)
    if not file_path.is_file():
        raise UserError(f"segment file not found: {file_path}")
    f = DefinitionFile(Path(file_path.name), str(file_path), "segment")
    f.parse()
    key = f.key
    owners, problems = check_keys([(key, f.path)], "segment")
    known = {*known_segments, key}  # a reference to itself is reported as a cycle, not as unknown
    references: list = []
    read = f.read(Segment, DeclaredFields(catalog), known, references)
    graph: dict[str, list] = {}
    if isinstance(known_segments, Mapping):
        graph = {other: [(ref, None) for ref in segment.references()] for other, segment in known_segments.items()
                 if other != key and isinstance(segment, Segment)}
    graph[key] = references
    on_cycle, cycle_problems = check_cycles(graph, {key: f.path}, start=key)
    problems += f.log.problems + cycle_problems
    segment = read if key in owners and not on_cycle else None
    return segment, sorted(problems)
