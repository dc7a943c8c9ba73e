"""Every kind of definition error, as the exact `PATH:LINE:COLUMN: message` line.

Each case writes real files into a fresh definitions folder and runs
`load_project`; `{d}` in an expected line stands for that folder as given.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from pipelines.errors import UserError
from pipelines.segments.fields import FieldCatalog
from pipelines.segments.loader import load_project, load_segment_file
from pipelines.segments.model import EventCount, FieldFilter, Group, Segment, SegmentFilter

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "tests" / "fixtures" / "spec_examples" / "segment_defs"
OK_SEGMENT = "name: Fine\ngroups:\n  - filters:\n      - {field: state, op: is, value: NY}\n"


def write_defs(root: Path, files: dict[str, str | bytes]) -> Path:
    for relative, content in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    return root


def one_filter(*lines: str) -> str:
    """A segment whose only filter is written in block style starting on line 4, column 9:
    `field:`/`event:`/`segment:` on line 4 (its value at column 16 for `field: `),
    following keys on lines 5, 6, ... at column 9."""
    body = "\n        ".join(lines)
    return f"name: T\ngroups:\n  - filters:\n      - {body}\n"


def problems_of(tmp_path: Path, files: dict[str, str | bytes]) -> list[str]:
    defs = write_defs(tmp_path / "defs", files)
    return [str(p) for p in load_project(defs)[1]]


def expect(tmp_path: Path, lines: list[str]) -> list[str]:
    return [line.format(d=tmp_path / "defs") for line in lines]


CASES: dict[str, tuple[dict[str, str | bytes], list[str]]] = {
    # -- files and YAML -----------------------------------------------------------
    "yaml syntax error": (
        {"s.yaml": "name: T\ngroups: [1, 2\n"},
        ["{d}/s.yaml:3:1: invalid YAML: expected ',' or ']', but got '<stream end>' "
         "(while parsing a flow sequence)"]),
    "two yaml documents": (
        {"s.yaml": OK_SEGMENT + "---\nname: again\n"},
        ["{d}/s.yaml:5:1: a definition file holds one YAML document; remove the second '---' document"]),
    "not utf-8": (
        {"s.yaml": b"name: caf\xe9\n"},
        ["{d}/s.yaml:1:10: file is not valid UTF-8 text"]),
    "control character": (
        {"s.yaml": "name: a\x07b\n"},
        ["{d}/s.yaml:1:8: invalid YAML: character U+0007 is not allowed"]),
    "file is a list": (
        {"s.yaml": "- name: T\n"},
        ["{d}/s.yaml:1:1: a segment definition must be a mapping (key: value), not a list"]),
    "file is a scalar": (
        {"s.yaml": "hello\n"},
        ["{d}/s.yaml:1:1: a segment definition must be a mapping (key: value), not the text 'hello'"]),
    "empty file": (
        {"s.yaml": "# nothing yet\n"},
        ["{d}/s.yaml:1:1: empty file: a segment needs 'name' and 'groups'"]),
    "duplicate yaml key": (
        {"s.yaml": "name: A\nname: B\ngroups:\n  - filters:\n      - {field: state, op: is, value: NY}\n"},
        ["{d}/s.yaml:2:1: duplicate key 'name' (first given on line 1)"]),
    "bad file key": (
        {"My-Segment.yaml": OK_SEGMENT},
        ["{d}/My-Segment.yaml:1:1: invalid segment key 'My-Segment' (from the file name): use lowercase "
         "letters, digits and _, starting with a letter, at most 63 characters"]),
    "key too long": (
        {("a" * 64) + ".yaml": OK_SEGMENT},
        ["{d}/" + "a" * 64 + ".yaml:1:1: invalid segment key '" + "a" * 64 + "' (from the file name): use "
         "lowercase letters, digits and _, starting with a letter, at most 63 characters"]),
    "duplicate key across folders": (
        {"ny.yaml": OK_SEGMENT, "east/ny.yaml": OK_SEGMENT, "west/coast/ny.yaml": OK_SEGMENT},
        # The first file in sorted path order keeps the key; every later one is reported.
        ["{d}/ny.yaml:1:1: duplicate segment key 'ny': already defined in {d}/east/ny.yaml",
         "{d}/west/coast/ny.yaml:1:1: duplicate segment key 'ny': already defined in {d}/east/ny.yaml"]),
    # -- segment keys ---------------------------------------------------------------
    "unknown key with suggestion": (
        {"s.yaml": "name: T\ngrups: []\ngroups:\n  - filters:\n      - {field: state, op: is, value: NY}\n"},
        ["{d}/s.yaml:2:1: unknown key 'grups' — did you mean 'groups'?"]),
    "unknown key without suggestion": (
        {"s.yaml": OK_SEGMENT + "owner: me\n"},
        ["{d}/s.yaml:5:1: unknown key 'owner' (expected one of: name, description, match, groups)"]),
    "missing name and groups": (
        {"s.yaml": "description: nothing else\n"},
        ["{d}/s.yaml:1:1: missing required key 'groups' in segment",
         "{d}/s.yaml:1:1: missing required key 'name' in segment"]),
    "empty name": (
        {"s.yaml": OK_SEGMENT.replace("name: Fine", "name: ''")},
        ["{d}/s.yaml:1:7: 'name' must be a non-empty string, not the text ''"]),
    "name too long": (
        {"s.yaml": OK_SEGMENT.replace("name: Fine", "name: " + "x" * 201)},
        ["{d}/s.yaml:1:7: 'name' is 201 characters long; at most 200 are allowed"]),
    "name is a list": (
        {"s.yaml": OK_SEGMENT.replace("name: Fine", "name: [a]")},
        ["{d}/s.yaml:1:7: 'name' must be a non-empty string, not a list"]),
    "segment match": (
        {"s.yaml": OK_SEGMENT + "match: both\n"},
        ["{d}/s.yaml:5:8: 'match' must be 'any' or 'all', not 'both'"]),
    "group match with suggestion": (
        {"s.yaml": "name: T\ngroups:\n  - match: nonee\n    filters:\n      - {field: state, op: is, value: NY}\n"},
        ["{d}/s.yaml:3:12: 'match' must be one of 'all', 'any' or 'none', not 'nonee' — did you mean 'none'?"]),
    "empty groups": (
        {"s.yaml": "name: T\ngroups: []\n"},
        ["{d}/s.yaml:2:9: 'groups' must be a non-empty list, not an empty list"]),
    "empty filters": (
        {"s.yaml": "name: T\ngroups:\n  - filters: []\n"},
        ["{d}/s.yaml:3:14: 'filters' must be a non-empty list, not an empty list"]),
    "group without filters": (
        {"s.yaml": "name: T\ngroups:\n  - match: any\n"},
        ["{d}/s.yaml:3:5: missing required key 'filters' in group"]),
    "group without filters and a wrong match": (
        {"s.yaml": "name: X\ngroups:\n  - match: al\n"},
        ["{d}/s.yaml:3:5: missing required key 'filters' in group",
         "{d}/s.yaml:3:12: 'match' must be one of 'all', 'any' or 'none', not 'al' — did you mean 'all'?"]),
    "group is a list": (
        {"s.yaml": "name: T\ngroups:\n  - - {field: state, op: is, value: NY}\n"},
        ["{d}/s.yaml:3:5: a group must be a mapping (key: value), not a list"]),
    # -- filter kinds ------------------------------------------------------------------
    "filter with no kind": (
        {"s.yaml": one_filter("op: is")},
        ["{d}/s.yaml:4:9: a filter needs one of 'field', 'segment' or 'event'"]),
    "filter with a misspelled kind": (
        {"s.yaml": one_filter("feild: state", "op: is", "value: NY")},
        ["{d}/s.yaml:4:9: unknown key 'feild' — did you mean 'field'?"]),
    "filter with two kinds": (
        {"s.yaml": one_filter("field: state", "event: purchase", "op: is", "value: NY")},
        ["{d}/s.yaml:4:9: a filter must have exactly one of 'field', 'segment' or 'event', "
         "but has 'field' and 'event'"]),
    "filter is text": (
        {"s.yaml": "name: T\ngroups:\n  - filters:\n      - state is NY\n"},
        ["{d}/s.yaml:4:9: a filter must be a mapping with one of 'field', 'segment' or 'event', "
         "not the text 'state is NY'"]),
    # -- field filters ---------------------------------------------------------------------
    "unknown field with suggestion": (
        {"s.yaml": one_filter("field: stat", "op: is", "value: NY")},
        ["{d}/s.yaml:4:16: unknown field 'stat' — did you mean 'state'?"]),
    "unknown field without suggestion": (
        {"s.yaml": one_filter("field: favourite_colour", "op: is", "value: red")},
        ["{d}/s.yaml:4:16: unknown field 'favourite_colour' (neither a standard field nor declared in "
         "_fields.yaml)"]),
    "unknown key in field filter": (
        {"s.yaml": one_filter("field: state", "op: is", "valeu: NY")},
        ["{d}/s.yaml:4:9: operator 'is' on field 'state' needs a 'value'",
         "{d}/s.yaml:6:9: unknown key 'valeu' — did you mean 'value'?"]),
    "missing op": (
        {"s.yaml": one_filter("field: state", "value: NY")},
        ["{d}/s.yaml:4:9: missing required key 'op' in field filter"]),
    "operator does not fit the type": (
        {"s.yaml": one_filter("field: state", "op: gt", "value: 5")},
        ["{d}/s.yaml:5:13: operator 'gt' does not apply to string field 'state' (string fields allow: is, "
         "is_not, in, not_in, contains, not_contains, starts_with, ends_with, is_set, is_not_set)"]),
    "list operator on a boolean": (
        {"_fields.yaml": "subscriber_fields: {vip: boolean}\n",
         "s.yaml": one_filter("field: vip", "op: has_any", "value: [x]")},
        ["{d}/s.yaml:5:13: operator 'has_any' does not apply to boolean field 'vip' (boolean fields allow: "
         "is, is_not, is_set, is_not_set)"]),
    "unknown operator": (
        {"s.yaml": one_filter("field: age", "op: bigger", "value: 5")},
        ["{d}/s.yaml:5:13: unknown operator 'bigger'"]),
    "unknown operator with suggestion": (
        {"s.yaml": one_filter("field: state", "op: iss", "value: NY")},
        ["{d}/s.yaml:5:13: unknown operator 'iss' — did you mean 'is'?"]),
    "missing value": (
        {"s.yaml": one_filter("field: state", "op: is")},
        ["{d}/s.yaml:4:9: operator 'is' on field 'state' needs a 'value'"]),
    "is_set with a value": (
        {"s.yaml": one_filter("field: tags", "op: is_set", "value: [x]")},
        ["{d}/s.yaml:6:9: operator 'is_set' takes no 'value'"]),
    # -- values ------------------------------------------------------------------------------
    "is with a list": (
        {"s.yaml": one_filter("field: state", "op: is", "value: [NY]")},
        ["{d}/s.yaml:6:16: operator 'is' on field 'state' needs a non-empty string (test a missing value "
         "with is_not_set); got a list"]),
    "is with an empty string": (
        {"s.yaml": one_filter("field: city", "op: is_not", "value: ''")},
        ["{d}/s.yaml:6:16: operator 'is_not' on field 'city' needs a non-empty string (test a missing value "
         "with is_not_set); got the text ''"]),
    "is with null": (
        {"s.yaml": one_filter("field: city", "op: is", "value: null")},
        ["{d}/s.yaml:6:16: operator 'is' on field 'city' needs a non-empty string (test a missing value "
         "with is_not_set); got an empty value"]),
    "is on a number field with text": (
        {"s.yaml": one_filter("field: age", "op: is", "value: thirty")},
        ["{d}/s.yaml:6:16: operator 'is' on field 'age' needs a number; got the text 'thirty'"]),
    "is on a boolean with text": (
        {"_fields.yaml": "subscriber_fields: {vip: boolean}\n",
         "s.yaml": one_filter("field: vip", "op: is", "value: 'yes'")},
        ["{d}/s.yaml:6:16: operator 'is' on field 'vip' needs true or false; got the text 'yes'"]),
    "in with an empty list": (
        {"s.yaml": one_filter("field: state", "op: in", "value: []")},
        ["{d}/s.yaml:6:16: operator 'in' on field 'state' needs a non-empty list of values; got an empty list"]),
    "in with a scalar": (
        {"s.yaml": one_filter("field: state", "op: not_in", "value: NY")},
        ["{d}/s.yaml:6:16: operator 'not_in' on field 'state' needs a non-empty list of values; "
         "got the text 'NY'"]),
    "in with a wrong item": (
        {"s.yaml": one_filter("field: age", "op: in", "value: [30, forty]")},
        ["{d}/s.yaml:6:21: operator 'in' on field 'age' needs a number; got the text 'forty'"]),
    "contains with an empty string": (
        {"s.yaml": one_filter("field: email", "op: contains", "value: ''")},
        ["{d}/s.yaml:6:16: operator 'contains' on field 'email' needs a non-empty string; got the text ''"]),
    "starts_with with a list": (
        {"s.yaml": one_filter("field: email", "op: starts_with", "value: [a]")},
        ["{d}/s.yaml:6:16: operator 'starts_with' on field 'email' needs a non-empty string; got a list"]),
    "gt with quoted number": (
        {"s.yaml": one_filter("field: age", "op: gt", "value: '5'")},
        ["{d}/s.yaml:6:16: operator 'gt' on field 'age' needs a number; got the text '5'"]),
    "gte with a boolean": (
        {"s.yaml": one_filter("field: age", "op: gte", "value: true")},
        ["{d}/s.yaml:6:16: operator 'gte' on field 'age' needs a number; got the boolean true"]),
    "lt with infinity": (
        {"s.yaml": one_filter("field: age", "op: lt", "value: .inf")},
        ["{d}/s.yaml:6:16: operator 'lt' on field 'age' needs a finite number; got the number .inf"]),
    "between reversed": (
        {"s.yaml": one_filter("field: age", "op: between", "value: [65, 18]")},
        ["{d}/s.yaml:6:16: operator 'between' on field 'age' needs [low, high] numbers with low <= high; "
         "got 65 > 18"]),
    "between with three items": (
        {"s.yaml": one_filter("field: age", "op: between", "value: [1, 2, 3]")},
        ["{d}/s.yaml:6:16: operator 'between' on field 'age' needs [low, high] numbers; got a list of 3"]),
    "between dates reversed": (
        {"s.yaml": one_filter("field: created_at", "op: between", "value: [2024-03-01, '2024-02-01']")},
        ["{d}/s.yaml:6:16: operator 'between' on field 'created_at' needs [low, high] dates YYYY-MM-DD with "
         "low <= high; got 2024-03-01 > 2024-02-01"]),
    "between dates with a number": (
        {"s.yaml": one_filter("field: created_at", "op: between", "value: [2024-03-01, 5]")},
        ["{d}/s.yaml:6:29: operator 'between' on field 'created_at' needs a date YYYY-MM-DD; "
         "got the number 5"]),
    "before an impossible date": (
        {"s.yaml": one_filter("field: created_at", "op: before", "value: 2024-02-30")},
        ["{d}/s.yaml:6:16: operator 'before' on field 'created_at' needs a date YYYY-MM-DD; "
         "'2024-02-30' is not a real date"]),
    "on an impossible quoted date": (
        {"s.yaml": one_filter("field: created_at", "op: on", "value: '2024-13-01'")},
        ["{d}/s.yaml:6:16: operator 'on' on field 'created_at' needs a date YYYY-MM-DD; "
         "'2024-13-01' is not a real date"]),
    "after a timestamp": (
        {"s.yaml": one_filter("field: created_at", "op: after", "value: 2024-01-01T10:00:00")},
        ["{d}/s.yaml:6:16: operator 'after' on field 'created_at' needs a date YYYY-MM-DD; "
         "got the date 2024-01-01T10:00:00"]),
    "after another date format": (
        {"_fields.yaml": "subscriber_fields: {birthday: date}\n",
         "s.yaml": one_filter("field: birthday", "op: after", "value: 01/02/2024")},
        ["{d}/s.yaml:6:16: operator 'after' on field 'birthday' needs a date YYYY-MM-DD; "
         "got the text '01/02/2024'"]),
    "in_last_days zero": (
        {"s.yaml": one_filter("field: created_at", "op: in_last_days", "value: 0")},
        ["{d}/s.yaml:6:16: operator 'in_last_days' on field 'created_at' needs a positive whole number of "
         "days; got the number 0"]),
    "not_in_last_days fraction": (
        {"s.yaml": one_filter("field: created_at", "op: not_in_last_days", "value: 1.5")},
        ["{d}/s.yaml:6:16: operator 'not_in_last_days' on field 'created_at' needs a positive whole number "
         "of days; got the number 1.5"]),
    "has_any empty": (
        {"s.yaml": one_filter("field: tags", "op: has_any", "value: []")},
        ["{d}/s.yaml:6:16: operator 'has_any' on field 'tags' needs a non-empty list of strings; "
         "got an empty list"]),
    "has_all a single string": (
        {"s.yaml": one_filter("field: tags", "op: has_all", "value: vip")},
        ["{d}/s.yaml:6:16: operator 'has_all' on field 'tags' needs a non-empty list of strings; "
         "got the text 'vip'"]),
    "has_none with a mapping item": (
        {"s.yaml": one_filter("field: tags", "op: has_none", "value: [a, {b: c}]")},
        ["{d}/s.yaml:6:20: operator 'has_none' on field 'tags' needs non-empty strings in its list; "
         "got a mapping"]),
    # -- segment filters ---------------------------------------------------------------
    "segment filter op": (
        {"ny.yaml": OK_SEGMENT, "s.yaml": one_filter("segment: ny", "op: in")},
        ["{d}/s.yaml:5:13: 'op' must be 'is' or 'is_not', not 'in'"]),
    "segment filter unknown key": (
        {"ny.yaml": OK_SEGMENT, "s.yaml": one_filter("segment: ny", "op: is", "value: true")},
        ["{d}/s.yaml:6:9: unknown key 'value' (expected one of: segment, op)"]),
    "unknown segment with suggestion": (
        {"new_york.yaml": OK_SEGMENT, "s.yaml": one_filter("segment: new_yrok", "op: is")},
        ["{d}/s.yaml:4:18: unknown segment 'new_yrok' — did you mean 'new_york'?"]),
    "reference cycle": (
        {"a.yaml": one_filter("segment: b", "op: is"), "b.yaml": one_filter("segment: a", "op: is_not")},
        ["{d}/a.yaml:4:9: reference cycle: a -> b -> a"]),
    "self reference": (
        {"a.yaml": one_filter("segment: a", "op: is")},
        ["{d}/a.yaml:4:9: reference cycle: a -> a"]),
    "three-step cycle reported on the right filter": (
        {"c.yaml": "name: C\ngroups:\n  - filters:\n      - {field: state, op: is, value: NY}\n"
                   "      - {segment: a, op: is}\n",
         "a.yaml": "name: A\ngroups:\n  - filters:\n      - {field: state, op: is, value: NY}\n"
                   "  - filters:\n      - {segment: b, op: is}\n",
         "b.yaml": one_filter("segment: c", "op: is")},
        ["{d}/a.yaml:6:9: reference cycle: a -> b -> c -> a"]),
    # -- event filters ------------------------------------------------------------------
    "event name empty": (
        {"s.yaml": one_filter("event: ''", "op: performed")},
        ["{d}/s.yaml:4:16: 'event' must be a non-empty event name, not the text ''"]),
    "event op": (
        {"s.yaml": one_filter("event: purchase", "op: performd")},
        ["{d}/s.yaml:5:13: 'op' must be 'performed' or 'not_performed', not 'performd' — "
         "did you mean 'performed'?"]),
    "event missing op": (
        {"s.yaml": one_filter("event: purchase")},
        ["{d}/s.yaml:4:9: missing required key 'op' in event filter"]),
    "event in_last_days negative": (
        {"s.yaml": one_filter("event: purchase", "op: performed", "in_last_days: -3")},
        ["{d}/s.yaml:6:23: 'in_last_days' needs a positive whole number of days; got the number -3"]),
    "event unknown key": (
        {"s.yaml": one_filter("event: purchase", "op: performed", "within_days: 3")},
        ["{d}/s.yaml:6:9: unknown key 'within_days' — did you mean 'in_last_days'?"]),
    "event where over a subscriber field": (
        {"s.yaml": one_filter("event: purchase", "op: performed", "where: [{field: state, op: is, value: NY}]")},
        ["{d}/s.yaml:6:25: unknown event field 'state' (neither a standard field nor declared in "
         "_fields.yaml)"]),
    "event where typo": (
        {"s.yaml": one_filter("event: purchase", "op: performed", "where: [{field: amout, op: gte, value: 5}]")},
        ["{d}/s.yaml:6:25: unknown event field 'amout' — did you mean 'amount'?"]),
    "event where with a segment filter": (
        {"s.yaml": one_filter("event: purchase", "op: performed", "where: [{segment: x, op: is}]")},
        ["{d}/s.yaml:6:18: a 'where' filter tests the event's own fields with 'field', not 'segment'"]),
    "event where bad value": (
        {"s.yaml": one_filter("event: purchase", "op: performed", "where: [{field: amount, op: gte, value: x}]")},
        ["{d}/s.yaml:6:49: operator 'gte' on field 'amount' needs a number; got the text 'x'"]),
    "event where not a list": (
        {"s.yaml": one_filter("event: purchase", "op: performed", "where: {field: amount, op: gte, value: 5}")},
        ["{d}/s.yaml:6:16: 'where' must be a list, not a mapping"]),
    "event count op": (
        {"s.yaml": one_filter("event: purchase", "op: performed", "count: {op: ge, value: 2}")},
        ["{d}/s.yaml:6:21: 'op' must be one of 'gt', 'gte', 'lt', 'lte' or 'is', not 'ge' — "
         "did you mean 'gte'?"]),
    "event count negative": (
        {"s.yaml": one_filter("event: purchase", "op: performed", "count: {op: gte, value: -1}")},
        ["{d}/s.yaml:6:33: count 'value' needs a whole number >= 0; got the number -1"]),
    "event count missing value": (
        {"s.yaml": one_filter("event: purchase", "op: performed", "count: {op: gte}")},
        ["{d}/s.yaml:6:16: missing required key 'value' in count"]),
    "event count unknown key": (
        {"s.yaml": one_filter("event: purchase", "op: performed", "count: {op: gte, value: 1, vaule: 2}")},
        ["{d}/s.yaml:6:36: unknown key 'vaule' — did you mean 'value'?"]),
    # -- audiences -----------------------------------------------------------------------
    "audience without include": (
        {"ny.yaml": OK_SEGMENT, "audiences/a.yaml": "name: A\nexclude: [ny]\n"},
        ["{d}/audiences/a.yaml:1:1: missing required key 'include' in audience"]),
    "audience empty include": (
        {"ny.yaml": OK_SEGMENT, "audiences/a.yaml": "include: []\n"},
        ["{d}/audiences/a.yaml:1:10: 'include' must be a non-empty list, not an empty list"]),
    "audience unknown segment": (
        {"new_york.yaml": OK_SEGMENT, "audiences/a.yaml": "include: [new_yrok]\nexclude: [gone]\n"},
        ["{d}/audiences/a.yaml:1:11: unknown segment 'new_yrok' — did you mean 'new_york'?",
         "{d}/audiences/a.yaml:2:11: unknown segment 'gone'"]),
    "audience unknown field": (
        {"ny.yaml": OK_SEGMENT, "audiences/a.yaml": "include: [ny]\nfields: [email, frist_name]\n"},
        ["{d}/audiences/a.yaml:2:17: unknown field 'frist_name' — did you mean 'first_name'?"]),
    "audience unknown key": (
        {"ny.yaml": OK_SEGMENT, "audiences/a.yaml": "include: [ny]\nexcldue: [ny]\n"},
        ["{d}/audiences/a.yaml:2:1: unknown key 'excldue' — did you mean 'exclude'?"]),
    "audience bad key": (
        {"ny.yaml": OK_SEGMENT, "audiences/Black-Friday.yaml": "include: [ny]\n"},
        ["{d}/audiences/Black-Friday.yaml:1:1: invalid audience key 'Black-Friday' (from the file name): use "
         "lowercase letters, digits and _, starting with a letter, at most 63 characters"]),
    "audience duplicate key": (
        {"ny.yaml": OK_SEGMENT, "audiences/a.yaml": "include: [ny]\n", "audiences/old/a.yaml": "include: [ny]\n"},
        ["{d}/audiences/old/a.yaml:1:1: duplicate audience key 'a': already defined in {d}/audiences/a.yaml"]),
    "audience exclude not a list": (
        {"ny.yaml": OK_SEGMENT, "audiences/a.yaml": "include: [ny]\nexclude: ny\n"},
        ["{d}/audiences/a.yaml:2:10: 'exclude' must be a list, not the text 'ny'"]),
    # -- _fields.yaml ----------------------------------------------------------------------
    "fields unknown section": (
        {"_fields.yaml": "subscriber_field:\n  vip: boolean\n"},
        ["{d}/_fields.yaml:1:1: unknown key 'subscriber_field' — did you mean 'subscriber_fields'?"]),
    "fields unknown type": (
        {"_fields.yaml": "subscriber_fields:\n  points: int\n"},
        ["{d}/_fields.yaml:2:11: unknown type 'int' for field 'points' — did you mean 'integer'?"]),
    "fields unknown type without suggestion": (
        {"_fields.yaml": "event_fields:\n  coupon: text\n"},
        ["{d}/_fields.yaml:2:11: unknown type 'text' for field 'coupon' (types: string, integer, number, "
         "boolean, date, timestamp, list)"]),
    "fields bad name": (
        {"_fields.yaml": "subscriber_fields:\n  Loyalty Points: integer\n"},
        ["{d}/_fields.yaml:2:3: invalid field name 'Loyalty Points': use lowercase letters, digits and _, "
         "starting with a letter or _, at most 63 characters"]),
    "fields redeclare standard": (
        {"_fields.yaml": "subscriber_fields:\n  age: string\n"},
        ["{d}/_fields.yaml:2:8: 'age' is a standard subscriber field of type integer; "
         "it cannot be redeclared as string"]),
    "fields section not a mapping": (
        {"_fields.yaml": "event_fields: [coupon]\n"},
        ["{d}/_fields.yaml:1:15: 'event_fields' must be a mapping of field name to type, not a list"]),
    "a broken declaration is reported once, not at every use": (
        {"_fields.yaml": "subscriber_fields:\n  points: int\n",
         "s.yaml": one_filter("field: points", "op: gt", "value: 5"),
         "audiences/a.yaml": "include: [ny]\nfields: [points]\n", "ny.yaml": OK_SEGMENT},
        ["{d}/_fields.yaml:2:11: unknown type 'int' for field 'points' — did you mean 'integer'?"]),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_error_line(tmp_path: Path, case: str) -> None:
    files, expected = CASES[case]
    assert problems_of(tmp_path, files) == expect(tmp_path, expected)


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_invalid_definitions_stay_out_of_the_project(tmp_path: Path, case: str) -> None:
    """A file with a problem never yields a model."""
    files, _ = CASES[case]
    defs = write_defs(tmp_path / "defs", files)
    project, problems = load_project(defs)
    blamed = {p.path for p in problems}
    for relative in files:
        path = str(defs / relative)
        key = Path(relative).name.removesuffix(".yaml")
        if relative.startswith("_"):
            continue
        table = project.audiences if relative.startswith("audiences/") else project.segments
        in_project = key in table and table[key].path == path
        if path in blamed:
            assert not in_project, f"{relative} has problems but is in the project"


def test_every_problem_of_every_file_in_one_pass(tmp_path: Path) -> None:
    files = {
        "_fields.yaml": "subscriber_fields:\n  points: int\n",
        "good.yaml": OK_SEGMENT,
        "typo.yaml": one_filter("field: stat", "op: is", "value: NY"),
        "deep/nested/cycle_a.yaml": one_filter("segment: cycle_b", "op: is"),
        "cycle_b.yaml": one_filter("segment: cycle_a", "op: is"),
        "uses_good.yaml": one_filter("segment: good", "op: is_not"),
        "several.yaml": "name: ''\nmatch: some\ngroups:\n  - filters:\n      - {field: age, op: gt, value: x}\n",
        "audiences/send.yaml": "include: [good, typo]\nexclude: [missing]\nfields: [city]\n",
        "audiences/ok.yaml": "include: [good]\n",
        "_draft.yaml": "this is: [not even valid",
    }
    defs = write_defs(tmp_path / "defs", files)
    project, problems = load_project(defs)
    assert [str(p) for p in problems] == expect(tmp_path, [
        "{d}/_fields.yaml:2:11: unknown type 'int' for field 'points' — did you mean 'integer'?",
        "{d}/audiences/send.yaml:2:11: unknown segment 'missing'",
        "{d}/deep/nested/cycle_a.yaml:4:9: reference cycle: cycle_a -> cycle_b -> cycle_a",
        "{d}/several.yaml:1:7: 'name' must be a non-empty string, not the text ''",
        "{d}/several.yaml:2:8: 'match' must be 'any' or 'all', not 'some'",
        "{d}/several.yaml:5:37: operator 'gt' on field 'age' needs a number; got the text 'x'",
        "{d}/typo.yaml:4:16: unknown field 'stat' — did you mean 'state'?",
    ])
    assert problems == sorted(problems)
    # Valid definitions still load; those depending on broken ones do not.
    assert sorted(project.segments) == ["good", "uses_good"]
    assert sorted(project.audiences) == ["ok"]


def test_the_examples_validate_clean() -> None:
    assert load_project(Path(__file__).resolve().parent / "fixtures" / "spec_examples" / "segment_defs")[1] == []


def test_whitespace_is_text_like_any_other(tmp_path: Path) -> None:
    """"a non-empty string" and "1..200 characters": a space is a character."""
    files = {
        "spaced.yaml": "name: '  '\ngroups:\n  - filters:\n"
                       "      - {field: city, op: contains, value: ' '}\n"
                       "      - {field: first_name, op: is_not, value: ' '}\n"
                       "      - {field: tags, op: has_none, value: [' ']}\n",
    }
    assert problems_of(tmp_path, files) == []
    project, problems = load_project(tmp_path / "defs")
    assert not problems
    assert project.segments["spaced"].name == "  "
    assert [f.value for f in project.segments["spaced"].groups[0].filters] == [" ", " ", (" ",)]


def test_missing_folder_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="definitions folder not found: .*nowhere"):
        load_project(tmp_path / "nowhere")
    (tmp_path / "file.yaml").write_text(OK_SEGMENT)
    with pytest.raises(UserError, match="not a folder"):
        load_project(tmp_path / "file.yaml")


def test_paths_are_reported_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_defs(tmp_path / "defs", {"sub/s.yaml": one_filter("field: stat", "op: is", "value: NY")})
    monkeypatch.chdir(tmp_path)
    assert [str(p) for p in load_project("defs")[1]] == [
        "defs/sub/s.yaml:4:16: unknown field 'stat' — did you mean 'state'?"]
    assert [str(p) for p in load_project("./defs/")[1]] == [
        "defs/sub/s.yaml:4:16: unknown field 'stat' — did you mean 'state'?"]


class TestSingleFile:
    def test_preview_file_checks_references_against_known_keys(self, tmp_path: Path) -> None:
        path = write_defs(tmp_path, {"draft.yaml": one_filter("segment: engaged", "op: is")}) / "draft.yaml"
        segment, problems = load_segment_file(path, FieldCatalog(), known_segments=["engaged"])
        assert problems == [] and segment is not None and segment.key == "draft"
        segment, problems = load_segment_file(path, FieldCatalog(), known_segments=["engagd"])
        assert segment is None
        assert [str(p) for p in problems] == [f"{path}:4:18: unknown segment 'engaged' — did you mean 'engagd'?"]

    def test_preview_file_finds_cycles_through_saved_segments(self, tmp_path: Path) -> None:
        defs = write_defs(tmp_path / "defs", {"a.yaml": one_filter("segment: b", "op: is"), "b.yaml": OK_SEGMENT})
        project, problems = load_project(defs)
        assert problems == []
        draft = write_defs(tmp_path / "edit", {"b.yaml": one_filter("segment: a", "op: is")}) / "b.yaml"
        segment, problems = load_segment_file(draft, project.catalog, known_segments=project.segments)
        assert segment is None
        assert [str(p) for p in problems] == [f"{draft}:4:9: reference cycle: b -> a -> b"]

    def test_preview_file_uses_the_given_catalog(self, tmp_path: Path) -> None:
        path = write_defs(tmp_path, {"vips.yaml": one_filter("field: vip", "op: is", "value: true")}) / "vips.yaml"
        segment, problems = load_segment_file(path, FieldCatalog(), known_segments=[])
        assert segment is None and "unknown field 'vip'" in problems[0].message
        segment, problems = load_segment_file(path, FieldCatalog.with_custom({"vip": "boolean"}, {}), [])
        assert problems == [] and segment is not None
        assert segment.groups[0].filters[0].value is True

    def test_preview_missing_file_is_a_user_error(self, tmp_path: Path) -> None:
        with pytest.raises(UserError, match="segment file not found"):
            load_segment_file(tmp_path / "nope.yaml", FieldCatalog(), [])

    def test_preview_bad_file_name(self, tmp_path: Path) -> None:
        path = write_defs(tmp_path, {"New Segment.yaml": OK_SEGMENT}) / "New Segment.yaml"
        segment, problems = load_segment_file(path, FieldCatalog(), [])
        assert segment is None and [(p.line, p.col) for p in problems] == [(1, 1)]
        assert "invalid segment key 'New Segment'" in problems[0].message


# -- the models validate, whoever builds them ---------------------------------------------

# Keys the models hold but no file may set, slots given the wrong kind of node, and
# problems inside values: the lines the hand-written rules printed before the models
# validated (checked against them over thousands of mutated example folders).
MODEL_CASES: dict[str, tuple[dict[str, str | bytes], list[str]]] = {
    "internal names are unknown keys": (
        {"ny.yaml": OK_SEGMENT + "key: other\npath: x\npos: 1\n",
         "s.yaml": one_filter("field: state", "op: is", "value: NY", "kind: event"),
         "c.yaml": one_filter("event: purchase", "op: performed", "count: {op: gte, value: 1, kind: x}"),
         "audiences/a.yaml": "include: [ny]\nkey: b\nholdout: {percent: 5, salt: x, pos: 3}\n"},
        ["{d}/audiences/a.yaml:2:1: unknown key 'key' (expected one of: name, description, include, exclude, "
         "fields, holdout)",
         "{d}/audiences/a.yaml:3:32: unknown key 'pos' (expected one of: percent, salt)",
         "{d}/c.yaml:6:36: unknown key 'kind' (expected one of: op, value)",
         "{d}/ny.yaml:5:1: unknown key 'key' (expected one of: name, description, match, groups)",
         "{d}/ny.yaml:6:1: unknown key 'path' — did you mean 'match'?",
         "{d}/ny.yaml:7:1: unknown key 'pos' (expected one of: name, description, match, groups)",
         "{d}/s.yaml:7:9: unknown key 'kind' (expected one of: field, op, value)"]),
    "every slot given the wrong kind of node": (
        {"s.yaml": "name: T\nmatch: [x]\ngroups:\n  - match: ~\n    filters: {a: b}\n  - 5\n"
                   "  - filters: [{segment: [a], op: 3}, {event: x, op: performed, in_last_days: 0, where: [5], "
                   "count: 3}]\n",
         "f.yaml": one_filter("field: [age]", "op: {a: b}", "value: 5")},
        ["{d}/f.yaml:4:16: 'field' must be a field name, not a list",
         "{d}/f.yaml:5:13: 'op' must be an operator name, not a mapping",
         "{d}/s.yaml:2:8: 'match' must be 'any' or 'all', not a list",
         "{d}/s.yaml:4:12: 'match' must be one of 'all', 'any' or 'none', not an empty value",
         "{d}/s.yaml:5:14: 'filters' must be a non-empty list, not a mapping",
         "{d}/s.yaml:6:5: a group must be a mapping (key: value), not the number 5",
         "{d}/s.yaml:7:25: 'segment' must be a segment key, not a list",
         "{d}/s.yaml:7:34: 'op' must be 'is' or 'is_not', not '3'",
         "{d}/s.yaml:7:78: 'in_last_days' needs a positive whole number of days; got the number 0",
         "{d}/s.yaml:7:89: a 'where' filter must be a mapping (key: value), not the number 5",
         "{d}/s.yaml:7:100: 'count' must be a mapping (key: value), not the number 3"]),
    "every audience slot wrong": (
        {"audiences/a.yaml": "name: ''\ndescription: [x]\ninclude: ['', 3, [x]]\nexclude: {}\n"
                             "fields: [group, tags, tagz, 5]\nholdout: {percent: 51, salt: ''}\n",
         "audiences/b.yaml": "include: x\nholdout: 5\n"},
        ["{d}/audiences/a.yaml:1:7: 'name' must be a non-empty string, not the text ''",
         "{d}/audiences/a.yaml:2:14: 'description' must be a string, not a list",
         "{d}/audiences/a.yaml:3:11: unknown segment ''",
         "{d}/audiences/a.yaml:3:15: unknown segment '3'",
         "{d}/audiences/a.yaml:3:18: 'include' lists segment keys, not a list",
         "{d}/audiences/a.yaml:4:10: 'exclude' must be a list, not a mapping",
         "{d}/audiences/a.yaml:5:10: field 'group' clashes with the recipients column of that name "
         "(reserved: audience, group, run_id)",
         "{d}/audiences/a.yaml:5:23: unknown field 'tagz' — did you mean 'tags'?",
         "{d}/audiences/a.yaml:5:29: unknown field '5' (neither a standard field nor declared)",
         "{d}/audiences/a.yaml:6:20: holdout 'percent' must be a number from 0 to 50, not the number 51",
         "{d}/audiences/a.yaml:6:30: holdout 'salt' must be a non-empty string, not the text ''",
         "{d}/audiences/b.yaml:1:10: 'include' must be a non-empty list, not the text 'x'",
         "{d}/audiences/b.yaml:2:10: 'holdout' must be a mapping (key: value), not the number 5"]),
    "key problems count where a mapping is read as one": (
        {"s.yaml": one_filter("field: tags", "op: has_none", "value: [a, {[k]: b}]"),
         "t.yaml": "name: T\ngroups:\n  - filters:\n      - {[1, 2]: x, op: is}\n      - {field: age, op: gt, "
                   "value: 1, op: lt}\n",
         "_fields.yaml": "subscriber_fields:\n  tier: string\n  ? [k]\n  : string\n"},
        ["{d}/_fields.yaml:3:5: a key must be plain text, not a list",
         "{d}/s.yaml:6:20: operator 'has_none' on field 'tags' needs non-empty strings in its list; got a mapping",
         "{d}/t.yaml:4:9: a filter needs one of 'field', 'segment' or 'event'",
         "{d}/t.yaml:5:40: duplicate key 'op' (first given on line 5)"]),
    "a standard field redeclared with a bad type stays usable": (
        {"_fields.yaml": "subscriber_fields:\n  created_at: none\n",
         "s.yaml": one_filter("field: created_at", "op: in_last_days", "value: 3")},
        ["{d}/_fields.yaml:2:15: unknown type 'none' for field 'created_at' (types: string, integer, number, "
         "boolean, date, timestamp, list)"]),
}


@pytest.mark.parametrize("case", list(MODEL_CASES), ids=list(MODEL_CASES))
def test_model_error_line(tmp_path: Path, case: str) -> None:
    files, expected = MODEL_CASES[case]
    assert problems_of(tmp_path, files) == expect(tmp_path, expected)


def test_models_built_in_python_validate() -> None:
    """Not only files: a model never holds an operator or a choice the language lacks."""
    state = FieldFilter(field="state", op="is", value="NY")
    for build in (lambda: FieldFilter(field="age", op="bigger", value=1),
                  lambda: SegmentFilter(segment="a", op="in"),
                  lambda: Group(match="both", filters=(state,)),
                  lambda: Segment(key="s", name="x" * 201, groups=(Group(filters=(state,)),)),
                  lambda: EventCount(op="ge", value=1),
                  lambda: FieldFilter(field="state", op="is", value="NY", colour="red")):
        with pytest.raises(ValidationError):
            build()
    assert FieldFilter(field="tags", op="is_set").value is None


def test_loading_never_imports_pyyaml() -> None:
    """ruamel is the one YAML parser: loading definitions never imports PyYAML."""
    code = ("import sys\n"
            "from pipelines.segments.loader import load_project\n"
            f"assert load_project({str(EXAMPLES)!r})[1] == []\n"
            "assert 'yaml' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
