"""Whatever is in a definition file, loading returns Problems and never raises.

Three generators: arbitrary text/bytes, arbitrary YAML structures built from
the language's own vocabulary, and random mutations of the spec's examples.
Beyond "no exception", each checks the contract of a problem line and that a
definition with a problem never reaches the Project.
"""

from __future__ import annotations

import copy
import io
import itertools
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from pipelines.segments.fields import STANDARD_EVENT_FIELDS, STANDARD_SUBSCRIBER_FIELDS, FieldCatalog
from pipelines.segments.loader import load_project, load_segment_file
from pipelines.segments.operators import OPERATORS
from pipelines.segments.problems import Problem

EXAMPLES = Path(__file__).resolve().parent / "fixtures" / "spec_examples" / "segment_defs"
OK_SEGMENT = "name: Fine\ngroups:\n  - filters:\n      - {field: state, op: is, value: NY}\n"
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_counter = itertools.count()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def fresh_dir(workdir: Path) -> Path:
    """A new folder per example (hypothesis reuses the module fixture)."""
    path = workdir / f"ex{next(_counter)}"
    path.mkdir()
    return path


def check_problems(problems: list[Problem], paths: set[str]) -> None:
    assert problems == sorted(problems)
    for problem in problems:
        assert isinstance(problem, Problem)
        assert problem.path in paths
        assert problem.line >= 1 and problem.col >= 1
        assert problem.message and "\n" not in problem.message and "Traceback" not in problem.message
        assert str(problem) == f"{problem.path}:{problem.line}:{problem.col}: {problem.message}"


def load_and_check(defs: Path, written: list[str]) -> list[Problem]:
    project, problems = load_project(defs)
    paths = {str(defs / rel) for rel in written}
    check_problems(problems, paths)
    blamed = {p.path for p in problems}
    for rel in written:
        if rel.startswith("_"):
            continue
        key = Path(rel).stem
        table = project.audiences if rel.startswith("audiences/") else project.segments
        if str(defs / rel) in blamed:
            assert key not in table or table[key].path != str(defs / rel)
        elif not problems:
            assert key in table  # a clean project keeps every definition
    return problems


# -- arbitrary text -----------------------------------------------------------------------


@FUZZ
@given(text=st.text(max_size=300))
def test_arbitrary_text(workdir: Path, text: str) -> None:
    defs = fresh_dir(workdir)
    (defs / "s.yaml").write_text(text, encoding="utf-8")
    load_and_check(defs, ["s.yaml"])
    segment, problems = load_segment_file(defs / "s.yaml", FieldCatalog(), ["ny"])
    check_problems(problems, {str(defs / "s.yaml")})
    assert (segment is None) == bool(problems)


@FUZZ
@given(data=st.binary(max_size=200), where=st.sampled_from(["s.yaml", "audiences/a.yaml", "_fields.yaml"]))
def test_arbitrary_bytes(workdir: Path, data: bytes, where: str) -> None:
    defs = fresh_dir(workdir)
    (defs / "audiences").mkdir()
    (defs / where).write_bytes(data)
    load_and_check(defs, [where])


# Text that looks like definitions: YAML punctuation and language words.
yamlish_text = st.lists(st.sampled_from([
    "name: ", "groups:", "\n", "  ", "- ", "filters:", "{", "}", "[", "]", ", ", ": ", "field", "op",
    "value", "segment", "event", "state", "is", "gt", "between", "2024-02-30", "02134", "&a ", "*a", "!!int ",
    "'", '"', "#", "---", "? ", "<<: ", "\t", "match: none", "where:", "count:", "include:", "-1", ".inf",
]), max_size=60).map("".join)


@FUZZ
@given(text=yamlish_text, where=st.sampled_from(["s.yaml", "audiences/a.yaml", "_fields.yaml"]))
def test_yamlish_text(workdir: Path, text: str, where: str) -> None:
    defs = fresh_dir(workdir)
    (defs / "audiences").mkdir()
    (defs / "ny.yaml").write_text(OK_SEGMENT)
    (defs / where).write_text(text, encoding="utf-8")
    load_and_check(defs, ["ny.yaml", where])


# -- arbitrary structures -------------------------------------------------------------------


WORDS = sorted({
    "name", "description", "match", "groups", "filters", "field", "segment", "event", "op", "value",
    "in_last_days", "where", "count", "include", "exclude", "fields", "subscriber_fields", "event_fields",
    "any", "all", "none", "performed", "not_performed", "ny", "s", "purchase", "integer", "date", "list",
    *OPERATORS, *STANDARD_SUBSCRIBER_FIELDS, *STANDARD_EVENT_FIELDS,
})
keys = st.sampled_from(WORDS) | st.text(max_size=6)
scalars = (st.none() | st.booleans() | st.integers(-5, 10**12) | st.floats(allow_nan=True) | st.dates()
           | st.sampled_from(WORDS) | st.text(max_size=12))
structures = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=30,
)
# Definitions shaped like the language, with random leaves.
filters = st.fixed_dictionaries(
    {"op": st.sampled_from([*OPERATORS, "performed", "not_performed"]) | scalars},
    optional={"field": st.sampled_from(sorted(STANDARD_SUBSCRIBER_FIELDS)) | scalars,
              "segment": st.sampled_from(["ny", "s", "nope"]), "event": st.sampled_from(["purchase", ""]),
              "value": structures, "in_last_days": scalars, "count": structures, "where": structures})
segments = st.fixed_dictionaries(
    {"name": scalars, "groups": st.lists(st.fixed_dictionaries(
        {"filters": st.lists(filters, max_size=3)}, optional={"match": scalars}), max_size=3)},
    optional={"match": scalars, "description": scalars, "extra": structures})


def dump(value: Any, flow: bool) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = flow
    out = io.StringIO()
    yaml.dump(value, out)
    return out.getvalue()


@FUZZ
@given(value=structures | segments, flow=st.booleans(),
       where=st.sampled_from(["s.yaml", "audiences/a.yaml", "_fields.yaml", "sub/s2.yaml"]))
def test_arbitrary_structures(workdir: Path, value: Any, flow: bool, where: str) -> None:
    defs = fresh_dir(workdir)
    (defs / where).parent.mkdir(parents=True, exist_ok=True)
    (defs / "ny.yaml").write_text(OK_SEGMENT)
    (defs / where).write_text(dump(value, flow), encoding="utf-8")
    load_and_check(defs, ["ny.yaml", where])


# -- mutations of valid definitions ------------------------------------------------------------


def _load_examples() -> dict[str, Any]:
    yaml = YAML(typ="safe", pure=True)
    return {str(p.relative_to(EXAMPLES)): yaml.load(p.read_text()) for p in sorted(EXAMPLES.rglob("*.yaml"))}


EXAMPLE_DATA = _load_examples()


def paths_in(value: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths_in(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths_in(child, (*prefix, index))
    return found


def mutate(tree: Any, path: tuple, kind: str, replacement: Any, typo: str) -> Any:
    if not path:
        return replacement
    parent = tree
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if kind == "delete":
        del parent[last]
    elif kind == "replace":
        parent[last] = replacement
    elif kind == "wrap":
        parent[last] = [parent[last]]
    elif kind == "duplicate" and isinstance(parent, list):
        parent.append(copy.deepcopy(parent[last]))
    elif kind == "rename" and isinstance(parent, dict):
        parent[f"{last}{typo}"] = parent.pop(last)
    return tree


@FUZZ
@given(data=st.data())
def test_mutated_examples(workdir: Path, data: st.DataObject) -> None:
    rel = data.draw(st.sampled_from(sorted(EXAMPLE_DATA)), label="file")
    tree = copy.deepcopy(EXAMPLE_DATA[rel])
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        path = data.draw(st.sampled_from(paths_in(tree)), label="path")
        kind = data.draw(st.sampled_from(["delete", "replace", "wrap", "duplicate", "rename"]), label="kind")
        tree = mutate(tree, path, kind, data.draw(structures, label="replacement"),
                      data.draw(st.sampled_from(["", "s", "_", "x"]), label="typo"))
    defs = fresh_dir(workdir)
    shutil.copytree(EXAMPLES, defs, dirs_exist_ok=True)
    (defs / rel).write_text(dump(tree, data.draw(st.booleans(), label="flow")), encoding="utf-8")
    load_and_check(defs, sorted(EXAMPLE_DATA))


def test_unchanged_examples_round_trip_through_dump(workdir: Path) -> None:
    """The mutation harness itself: dumping the examples unchanged keeps them valid."""
    defs = fresh_dir(workdir)
    for rel, tree in EXAMPLE_DATA.items():
        (defs / rel).parent.mkdir(parents=True, exist_ok=True)
        (defs / rel).write_text(dump(tree, flow=False), encoding="utf-8")
    project, problems = load_project(defs)
    assert problems == []
    assert len(project.segments) + len(project.audiences) == len(EXAMPLE_DATA) - 1  # minus _fields.yaml
