"""A new operator is one registered row (segments/operators.py): the validator,
both compilers, both engines (per distinct value and row by row), the
standalone SQL and the wording of `explain` pick it up with no other change."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pytest
from engine_support import engine_membership, standalone_membership

from pipelines.commands.describe import describe_field_filter
from pipelines.engine import ENGINES, evaluate_flags
from pipelines.segments.loader import load_project
from pipelines.segments.operators import OPERATORS, Operator, negation, operators_of_type, register

AS_OF = datetime(2026, 3, 1, 12)

IS_EVEN = Operator(
    "is_even", ("integer",), None,
    build=lambda lang, c, v, t, a: lang.compare("is", c % 2, lang.value(0, "integer")),
    text="{field} {op}",
)


@pytest.fixture
def is_even():
    register(IS_EVEN)
    register(negation("is_not_even", of="is_even"))
    yield
    del OPERATORS["is_even"], OPERATORS["is_not_even"]


def _write(folder, name: str, text: str) -> None:
    (folder / name).write_text(text, encoding="utf-8")


def test_a_registered_operator_is_validated_compiled_and_evaluated(tmp_path, is_even):
    assert operators_of_type("integer")[-2:] == ("is_even", "is_not_even")
    _write(tmp_path, "even.yaml", "name: Even\ngroups:\n  - filters:\n      - {field: age, op: is_even}\n")
    _write(tmp_path, "not_even.yaml",
           "name: Not even\ngroups:\n  - filters:\n      - {field: age, op: is_not_even}\n")
    project, problems = load_project(tmp_path)
    assert problems == []
    even = project.segments["even"].groups[0].filters[0]
    assert (even.op, even.value) == ("is_even", None)
    assert describe_field_filter(even) == "age is_even"

    ages = {"a": 30, "b": 31, "c": -4, "d": None, "e": 7, "f": 0}
    subscribers = pa.Table.from_pylist(
        [{"subscriber_id": k, "email": f"{k}@example.com", "status": "active", "age": v} for k, v in ages.items()],
        schema=project.catalog.subscriber_schema(),
    )
    events = project.catalog.event_schema().empty_table()
    # A missing age is in the negative operator only (spec rule 3).
    expected = {("even", k) for k in "acf"} | {("not_even", k) for k in "bde"}

    for engine in ENGINES:
        assert engine_membership(project, subscribers, events, AS_OF, engine) == expected, engine
        for encode in (True, False):  # per distinct value, and row by row
            flags = evaluate_flags(project, subscribers, events, AS_OF, engine=engine, encode=encode)
            got = {(key, sid) for key in ("even", "not_even")
                   for sid, member in zip(flags.column("subscriber_id").to_pylist(),
                                          flags.column(f"segment:{key}").to_pylist(), strict=True) if member}
            assert got == expected, (engine, encode)
    assert standalone_membership(project, subscribers, events, AS_OF, expected) == expected


def test_a_registered_operator_is_checked_like_the_built_in_ones(tmp_path, is_even):
    _write(tmp_path, "valued.yaml",
           "name: V\ngroups:\n  - filters:\n      - {field: age, op: is_even, value: 2}\n")
    _write(tmp_path, "on_text.yaml", "name: T\ngroups:\n  - filters:\n      - {field: city, op: is_even}\n")
    _, problems = load_project(tmp_path)
    messages = sorted(p.message for p in problems)
    assert messages[0].startswith("operator 'is_even' does not apply to string field 'city' (string fields allow:")
    assert messages[1] == "operator 'is_even' takes no 'value'"


def test_registering_a_taken_name_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register(Operator("is", ("string",), None, build=OPERATORS["is"].build))
