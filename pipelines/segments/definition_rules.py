"""Rules for one definition file: a segment, an audience or `_fields.yaml`.

Each reader walks the YAML node tree, reports every problem it finds at the
offending node, and returns a model built only from valid nodes (or None when
anything in the definition is wrong). Parse, don't validate: code that gets a
model never re-checks it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml.nodes import Node, ScalarNode

from .fields import (
    FIELD_TYPES,
    STANDARD_EVENT_FIELDS,
    STANDARD_SUBSCRIBER_FIELDS,
    FieldCatalog,
)
from .model import Audience, EventCount, EventFilter, FieldFilter, Group, Holdout, Pos, Segment, SegmentFilter
from .operators import OPERATORS, operators_of_type
from .problems import ProblemLog
from .value_rules import BAD, read_count_value, read_field_value, read_positive_days
from .yaml_tree import (
    FLOAT,
    INT,
    Entries,
    Unreadable,
    describe,
    did_you_mean,
    entries,
    is_map,
    is_null,
    is_seq,
    scalar_value,
    text_of,
)

KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}\Z")  # \Z: `$` also matches before a final newline
CUSTOM_FIELD_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,62}\Z")
NAME_MAX = 200

SEGMENT_KEYS = ("name", "description", "match", "groups")
GROUP_KEYS = ("match", "filters")
FIELD_FILTER_KEYS = ("field", "op", "value")
SEGMENT_FILTER_KEYS = ("segment", "op")
EVENT_FILTER_KEYS = ("event", "op", "in_last_days", "where", "count")
FILTER_KINDS = ("field", "segment", "event")
ALL_FILTER_KEYS = tuple(dict.fromkeys(FIELD_FILTER_KEYS + SEGMENT_FILTER_KEYS + EVENT_FILTER_KEYS))
COUNT_KEYS = ("op", "value")
COUNT_OPS = ("gt", "gte", "lt", "lte", "is")
AUDIENCE_KEYS = ("name", "description", "include", "exclude", "fields", "holdout")
HOLDOUT_KEYS = ("percent", "salt")
HOLDOUT_MAX_PERCENT = 50
# Columns of the recipients relation itself: an audience field of that name would clash.
RESERVED_AUDIENCE_FIELDS = ("audience", "group", "run_id")
FIELDS_FILE_SECTIONS = ("subscriber_fields", "event_fields")


@dataclass
class DeclaredFields:
    """What `_fields.yaml` declared. `broken_*` are names declared with a bad type:
    filters on them are dropped without a second message (the cause is reported
    once, in `_fields.yaml`)."""

    catalog: FieldCatalog = field(default_factory=FieldCatalog)
    broken_subscriber: frozenset[str] = frozenset()
    broken_event: frozenset[str] = frozenset()


@dataclass
class SegmentRead:
    segment: Segment | None
    # Every well-formed `{segment: KEY}` with its node, valid or not, so that
    # cycles are found in one pass even while other parts of a file are wrong.
    references: list[tuple[str, Node]] = field(default_factory=list)


def pos(log: ProblemLog, node: object) -> Pos:
    mark = getattr(node, "start_mark", None)
    return Pos(path=log.path, line=mark.line + 1, col=mark.column + 1) if mark else Pos(path=log.path)


# -- shared helpers -------------------------------------------------------------------


def _mapping(log: ProblemLog, node: object, allowed: tuple[str, ...], what: str) -> Entries | None:
    """Entries of a mapping node, reporting unknown keys; None (reported) if not a mapping."""
    if not is_map(node):
        log.node(node, f"{what} must be a mapping (key: value), not {describe(node)}")
        return None
    found = entries(node, log)  # type: ignore[arg-type]
    for key, (key_node, _) in found.items():
        if key not in allowed:
            hint = did_you_mean(key, allowed) or f" (expected one of: {', '.join(allowed)})"
            log.node(key_node, f"unknown key '{key}'{hint}")
    return found


def _require(log: ProblemLog, node: object, found: Entries, keys: tuple[str, ...], what: str) -> bool:
    missing = [k for k in keys if k not in found]
    for key in missing:
        log.node(node, f"missing required key '{key}' in {what}")
    return not missing


def _choice(log: ProblemLog, node: Node, key: str, choices: tuple[str, ...]) -> str | None:
    text = text_of(node)
    if text in choices:
        return text
    shown = f"'{text}'" if text is not None else describe(node)
    hint = did_you_mean(text, choices) if text else ""
    quoted = [f"'{c}'" for c in choices]
    allowed = " or ".join(quoted) if len(quoted) == 2 else f"one of {', '.join(quoted[:-1])} or {quoted[-1]}"
    log.node(node, f"'{key}' must be {allowed}, not {shown}{hint}")
    return None


def _name(log: ProblemLog, node: Node, key: str = "name") -> str | None:
    text = text_of(node)
    if not text:  # 1..200 characters, whatever they are
        log.node(node, f"'{key}' must be a non-empty string, not {describe(node)}")
        return None
    if len(text) > NAME_MAX:
        log.node(node, f"'{key}' is {len(text)} characters long; at most {NAME_MAX} are allowed")
        return None
    return text


def _description(log: ProblemLog, node: Node) -> str | None | Any:
    if is_null(node):
        return None
    text = text_of(node)
    if text is None:
        log.node(node, f"'description' must be a string, not {describe(node)}")
        return BAD
    return text


def _non_empty_list(log: ProblemLog, node: Node, key: str, allow_empty: bool = False) -> list[Node] | None:
    if not is_seq(node) or (not node.value and not allow_empty):  # type: ignore[attr-defined]
        need = "a list" if allow_empty else "a non-empty list"
        log.node(node, f"'{key}' must be {need}, not {describe(node)}")
        return None
    return list(node.value)  # type: ignore[attr-defined]


# -- segments ------------------------------------------------------------------------


@dataclass
class SegmentReader:
    """Reads one segment file. `known_segments` None means references are not checked here."""

    log: ProblemLog
    declared: DeclaredFields
    known_segments: Collection[str] | None
    references: list[tuple[str, Node]] = field(default_factory=list)

    def read(self, key: str, root: Node | None) -> SegmentRead:
        segment = self._segment(key, root)
        return SegmentRead(segment, self.references)

    def _segment(self, key: str, root: Node | None) -> Segment | None:
        log = self.log
        if root is None:
            log.at(1, 1, "empty file: a segment needs 'name' and 'groups'")
            return None
        found = _mapping(log, root, SEGMENT_KEYS, "a segment definition")
        if found is None:
            return None
        ok = _require(log, root, found, ("name", "groups"), "segment")
        name = _name(log, found["name"][1]) if "name" in found else None
        description = _description(log, found["description"][1]) if "description" in found else None
        match = _choice(log, found["match"][1], "match", ("any", "all")) if "match" in found else "any"
        groups: list[Group | None] = []
        if "groups" in found:
            items = _non_empty_list(log, found["groups"][1], "groups")
            groups = [self._group(item) for item in items] if items is not None else [None]
        wrong = not ok or name is None or description is BAD or match is None or None in groups
        if wrong or len(log):
            return None
        return Segment(key=key, name=name, description=description, match=match, groups=tuple(groups),
                       path=log.path, pos=pos(log, root))

    def _group(self, node: Node) -> Group | None:
        log = self.log
        before = len(log)  # any problem below invalidates this node
        found = _mapping(log, node, GROUP_KEYS, "a group")
        if found is None:
            return None
        # `match` is checked even when `filters` is missing: every problem in one pass.
        match = _choice(log, found["match"][1], "match", ("all", "any", "none")) if "match" in found else "all"
        if not _require(log, node, found, ("filters",), "group"):
            return None
        items = _non_empty_list(log, found["filters"][1], "filters")
        if items is None:
            return None
        filters = [self._filter(item) for item in items]
        if len(log) > before or match is None or None in filters:
            return None
        return Group(match=match, filters=tuple(filters), pos=pos(log, node))

    def _filter(self, node: Node) -> FieldFilter | SegmentFilter | EventFilter | None:
        log = self.log
        if not is_map(node):
            log.node(node, f"a filter must be a mapping with one of 'field', 'segment' or 'event', "
                           f"not {describe(node)}")
            return None
        # A scratch log: the kind's own reader reports duplicate keys once.
        found = entries(node, ProblemLog(log.path))  # type: ignore[arg-type]
        kinds = [k for k in FILTER_KINDS if k in found]
        if len(kinds) != 1:
            unknown = [k for k in found if k not in ALL_FILTER_KEYS]
            for key in unknown:
                log.node(found[key][0], f"unknown key '{key}'{did_you_mean(key, ALL_FILTER_KEYS)}")
            if kinds:
                listed = " and ".join(f"'{k}'" for k in kinds)
                log.node(node, f"a filter must have exactly one of 'field', 'segment' or 'event', but has {listed}")
            elif not unknown:
                log.node(node, "a filter needs one of 'field', 'segment' or 'event'")
            return None
        kind = kinds[0]
        if kind == "field":
            return read_field_filter(log, node, self.declared, scope="subscriber")
        if kind == "segment":
            return self._segment_filter(node)
        return self._event_filter(node)

    def _segment_filter(self, node: Node) -> SegmentFilter | None:
        log = self.log
        before = len(log)  # any problem below invalidates this node
        found = _mapping(log, node, SEGMENT_FILTER_KEYS, "a segment filter")
        assert found is not None
        ok = _require(log, node, found, ("op",), "segment filter")
        ref_node = found["segment"][1]
        ref = text_of(ref_node)
        if ref is None or not ref.strip():
            log.node(ref_node, f"'segment' must be a segment key, not {describe(ref_node)}")
            ref = None
        else:
            self.references.append((ref, node))
            if self.known_segments is not None and ref not in self.known_segments:
                log.node(ref_node, f"unknown segment '{ref}'{did_you_mean(ref, self.known_segments)}")
                ref = None
        op = _choice(log, found["op"][1], "op", ("is", "is_not")) if "op" in found else None
        if len(log) > before or not ok or ref is None or op is None:
            return None
        return SegmentFilter(segment=ref, op=op, pos=pos(log, node))

    def _event_filter(self, node: Node) -> EventFilter | None:
        log = self.log
        before = len(log)  # any problem below invalidates this node
        found = _mapping(log, node, EVENT_FILTER_KEYS, "an event filter")
        assert found is not None
        _require(log, node, found, ("op",), "event filter")
        name_node = found["event"][1]
        event = text_of(name_node)
        if event is None or not event.strip():
            log.node(name_node, f"'event' must be a non-empty event name, not {describe(name_node)}")
        op = _choice(log, found["op"][1], "op", ("performed", "not_performed")) if "op" in found else None
        days = read_positive_days(found["in_last_days"][1], "in_last_days", log) if "in_last_days" in found \
            else None
        where: list[FieldFilter | None] = []
        if "where" in found:
            items = _non_empty_list(log, found["where"][1], "where", allow_empty=True)
            where = [self._where_filter(item) for item in items] if items is not None else [None]
        count = self._count(found["count"][1]) if "count" in found else EventCount()
        if len(log) > before or event is None or op is None or None in where or count is None:
            return None
        return EventFilter(event=event, op=op, in_last_days=days, where=tuple(where), count=count,
                           pos=pos(log, node))

    def _where_filter(self, node: Node) -> FieldFilter | None:
        log = self.log
        if is_map(node):
            found = entries(node, ProblemLog(log.path))  # duplicates are reported by the reader below
            for other in ("segment", "event"):
                if other in found:
                    log.node(found[other][0], f"a 'where' filter tests the event's own fields with 'field', "
                                              f"not '{other}'")
                    return None
        return read_field_filter(log, node, self.declared, scope="event")

    def _count(self, node: Node) -> EventCount | None:
        log = self.log
        before = len(log)  # any problem below invalidates this node
        found = _mapping(log, node, COUNT_KEYS, "'count'")
        if found is None:
            return None
        _require(log, node, found, COUNT_KEYS, "count")
        op = _choice(log, found["op"][1], "op", COUNT_OPS) if "op" in found else None
        value = read_count_value(found["value"][1], log) if "value" in found else None
        if len(log) > before or op is None or value is None:
            return None
        return EventCount(op=op, value=value, pos=pos(log, node))


def read_field_filter(log: ProblemLog, node: Node, declared: DeclaredFields, scope: str) -> FieldFilter | None:
    """`{field, op, value}` over subscriber fields (scope "subscriber") or event fields ("event")."""
    what = "a field filter" if scope == "subscriber" else "a 'where' filter"
    before = len(log)  # any problem below invalidates this node
    found = _mapping(log, node, FIELD_FILTER_KEYS, what)
    if found is None:
        return None
    _require(log, node, found, ("field", "op"), "field filter" if scope == "subscriber" else "'where' filter")
    fields = declared.catalog.subscriber if scope == "subscriber" else declared.catalog.event
    broken = declared.broken_subscriber if scope == "subscriber" else declared.broken_event

    field_type: str | None = None
    name: str | None = None
    if "field" in found:
        field_node = found["field"][1]
        name = text_of(field_node)
        if name is None or not name.strip():
            log.node(field_node, f"'field' must be a field name, not {describe(field_node)}")
        elif name in fields:
            field_type = fields[name]
        elif name not in broken:
            label = "field" if scope == "subscriber" else "event field"
            hint = did_you_mean(name, fields) or " (neither a standard field nor declared in _fields.yaml)"
            log.node(field_node, f"unknown {label} '{name}'{hint}")

    op: str | None = None
    if "op" in found:
        op_node = found["op"][1]
        text = text_of(op_node)
        allowed = operators_of_type(field_type) if field_type else tuple(OPERATORS)
        if text is None:
            log.node(op_node, f"'op' must be an operator name, not {describe(op_node)}")
        elif text not in OPERATORS:
            log.node(op_node, f"unknown operator '{text}'{did_you_mean(text, allowed)}")
        elif field_type and text not in allowed:
            log.node(op_node, f"operator '{text}' does not apply to {field_type} field '{name}' "
                              f"({field_type} fields allow: {', '.join(allowed)})")
        else:
            op = text

    value: Any = None
    if op is not None and field_type is not None and name is not None:
        if OPERATORS[op].value is None:
            if "value" in found:
                log.node(found["value"][0], f"operator '{op}' takes no 'value'")
        elif "value" not in found:
            log.node(node, f"operator '{op}' on field '{name}' needs a 'value'")
        else:
            value = read_field_value(OPERATORS[op], name, field_type, found["value"][1], log)
    if len(log) > before or op is None or field_type is None or value is BAD:
        return None
    return FieldFilter(field=name, op=op, value=value, pos=pos(log, node))


# -- audiences ---------------------------------------------------------------------------


def read_audience(log: ProblemLog, key: str, root: Node | None, declared: DeclaredFields,
                  known_segments: Collection[str]) -> Audience | None:
    """An audience: include/exclude segment keys, carried subscriber fields; `name` defaults to the key."""
    if root is None:
        log.at(1, 1, "empty file: an audience needs 'include'")
        return None
    before = len(log)  # any problem below invalidates this node
    found = _mapping(log, root, AUDIENCE_KEYS, "an audience definition")
    if found is None:
        return None
    _require(log, root, found, ("include",), "audience")
    name = _name(log, found["name"][1]) if "name" in found else key
    description = _description(log, found["description"][1]) if "description" in found else None

    def keys_of(list_key: str, allow_empty: bool) -> tuple[str, ...]:
        items = _non_empty_list(log, found[list_key][1], list_key, allow_empty) if list_key in found else []
        out: list[str] = []
        for item in items or ():
            ref = text_of(item)
            if ref is None:
                log.node(item, f"'{list_key}' lists segment keys, not {describe(item)}")
            elif ref not in known_segments:
                log.node(item, f"unknown segment '{ref}'{did_you_mean(ref, known_segments)}")
            else:
                out.append(ref)
        return tuple(dict.fromkeys(out))

    include = keys_of("include", allow_empty=False)
    exclude = keys_of("exclude", allow_empty=True)
    columns: list[str] = []
    if "fields" in found:
        subscriber = declared.catalog.subscriber
        for item in _non_empty_list(log, found["fields"][1], "fields", allow_empty=True) or ():
            column = text_of(item)
            if column is None:
                log.node(item, f"'fields' lists subscriber field names, not {describe(item)}")
            elif column in RESERVED_AUDIENCE_FIELDS:
                log.node(item, f"field '{column}' clashes with the recipients column of that name "
                               f"(reserved: {', '.join(RESERVED_AUDIENCE_FIELDS)})")
            elif column in declared.broken_subscriber:
                name = None  # drop the audience quietly: the cause is reported once, in _fields.yaml
            elif column not in subscriber:
                hint = did_you_mean(column, subscriber) or " (neither a standard field nor declared)"
                log.node(item, f"unknown field '{column}'{hint}")
            else:
                columns.append(column)
    holdout = _holdout(log, found["holdout"][1]) if "holdout" in found else None
    if len(log) > before or name is None or description is BAD:
        return None
    return Audience(key=key, name=name, description=description, include=include, exclude=exclude,
                    fields=tuple(dict.fromkeys(columns)), holdout=holdout, path=log.path, pos=pos(log, root))


def _holdout(log: ProblemLog, node: Node) -> Holdout | None:
    """`holdout: {percent: 0-50, salt: TEXT}`; `holdout:` left empty means none."""
    if is_null(node):
        return None
    found = _mapping(log, node, HOLDOUT_KEYS, "'holdout'")
    if found is None or not _require(log, node, found, HOLDOUT_KEYS, "'holdout'"):
        return None
    percent_node, salt_node = found["percent"][1], found["salt"][1]
    percent = None
    if isinstance(percent_node, ScalarNode) and percent_node.tag in (INT, FLOAT):
        try:
            value = scalar_value(percent_node)
        except Unreadable:
            value = None
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) \
                and 0 <= value <= HOLDOUT_MAX_PERCENT:
            percent = value
    if percent is None:
        log.node(percent_node, f"holdout 'percent' must be a number from 0 to {HOLDOUT_MAX_PERCENT}, "
                               f"not {describe(percent_node)}")
    salt = text_of(salt_node)
    if not salt:
        log.node(salt_node, f"holdout 'salt' must be a non-empty string, not {describe(salt_node)}")
    if percent is None or not salt:
        return None
    return Holdout(percent=float(percent), salt=salt)


# -- _fields.yaml ---------------------------------------------------------------------------


def read_fields_file(log: ProblemLog, root: Node | None) -> DeclaredFields:
    """Custom field declarations. Valid declarations are kept even when others are wrong,
    so one typo does not turn every filter on the other fields into an error."""
    if root is None:
        return DeclaredFields()
    found = _mapping(log, root, FIELDS_FILE_SECTIONS, "_fields.yaml")
    if found is None:
        return DeclaredFields()
    sections: dict[str, dict[str, str]] = {}
    broken: dict[str, set[str]] = {}
    for section, standard in (("subscriber_fields", STANDARD_SUBSCRIBER_FIELDS),
                              ("event_fields", STANDARD_EVENT_FIELDS)):
        declared: dict[str, str] = {}
        bad: set[str] = set()
        sections[section], broken[section] = declared, bad
        if section not in found or is_null(found[section][1]):
            continue
        body = found[section][1]
        if not is_map(body):
            log.node(body, f"'{section}' must be a mapping of field name to type, not {describe(body)}")
            continue
        for name, (name_node, type_node) in entries(body, log).items():  # type: ignore[arg-type]
            type_name = text_of(type_node)
            if not CUSTOM_FIELD_PATTERN.match(name):
                log.node(name_node, f"invalid field name '{name}': use lowercase letters, digits and _, "
                                    f"starting with a letter or _, at most 63 characters")
                continue
            if type_name not in FIELD_TYPES:
                shown = f"'{type_name}'" if type_name is not None else describe(type_node)
                hint = did_you_mean(type_name, FIELD_TYPES) if type_name else ""
                log.node(type_node, f"unknown type {shown} for field '{name}'{hint}"
                                    f"{'' if hint else ' (types: ' + ', '.join(FIELD_TYPES) + ')'}")
                bad.add(name)
                continue
            if name in standard:
                if standard[name] != type_name:
                    table = "subscriber" if section == "subscriber_fields" else "event"
                    log.node(type_node, f"'{name}' is a standard {table} field of type {standard[name]}; "
                                        f"it cannot be redeclared as {type_name}")
                continue
            declared[name] = type_name
    catalog = FieldCatalog.with_custom(sections["subscriber_fields"], sections["event_fields"])
    return DeclaredFields(catalog, frozenset(broken["subscriber_fields"]), frozenset(broken["event_fields"]))
