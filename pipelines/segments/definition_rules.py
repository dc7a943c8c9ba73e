"""Names and limits shared by the definition rules, and `_fields.yaml`, read here by hand
rather than as a model because it keeps what is valid even when other declarations are
wrong: one typo must not turn every filter on the other fields into an error."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .fields import FIELD_TYPES, STANDARD_EVENT_FIELDS, STANDARD_SUBSCRIBER_FIELDS, FieldCatalog
from .problems import ProblemLog
from .yaml_tree import Data, YamlMap, describe, did_you_mean, is_null, node_of, text_of, unknown_key

KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}\Z")  # \Z: `$` also matches before a final newline
CUSTOM_FIELD_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,62}\Z")
NAME_MAX = 200
# Columns of the recipients relation itself: an audience field of that name would clash.
RESERVED_AUDIENCE_FIELDS = ("audience", "group", "run_id")
FIELDS_FILE_SECTIONS = {"subscriber_fields": STANDARD_SUBSCRIBER_FIELDS, "event_fields": STANDARD_EVENT_FIELDS}


@dataclass
class DeclaredFields:
    """What `_fields.yaml` declared. `broken_*`: names declared with a bad type; filters on
    them are dropped without a second message (the cause is reported once, in `_fields.yaml`)."""

    catalog: FieldCatalog = field(default_factory=FieldCatalog)
    broken_subscriber: frozenset[str] = frozenset()
    broken_event: frozenset[str] = frozenset()


def read_fields_file(log: ProblemLog, root: Data | None) -> DeclaredFields:
    """Custom field declarations; valid ones are kept even when others are wrong."""
    if root is None:
        return DeclaredFields()
    if not isinstance(root, YamlMap):
        log.node(node_of(root), f"_fields.yaml must be a mapping (key: value), not {describe(root)}")
        return DeclaredFields()
    root.report_keys(log)
    for key in root:
        if key not in FIELDS_FILE_SECTIONS:
            log.node(root.key_nodes[key], unknown_key(key, tuple(FIELDS_FILE_SECTIONS)))
    subscriber, broken_subscriber = _section(log, "subscriber_fields", STANDARD_SUBSCRIBER_FIELDS,
                                             root.get("subscriber_fields"))
    event, broken_event = _section(log, "event_fields", STANDARD_EVENT_FIELDS, root.get("event_fields"))
    return DeclaredFields(FieldCatalog.with_custom(subscriber, event), broken_subscriber, broken_event)


def _section(log: ProblemLog, section: str, standard: dict[str, str],
             body: Data | None) -> tuple[dict[str, str], frozenset[str]]:
    if is_null(body):
        return {}, frozenset()
    if not isinstance(body, YamlMap):
        log.node(node_of(body), f"'{section}' must be a mapping of field name to type, not {describe(body)}")
        return {}, frozenset()
    body.report_keys(log)
    declared: dict[str, str] = {}
    bad: set[str] = set()
    for name, type_node in body.items():
        type_name = text_of(type_node)
        if not CUSTOM_FIELD_PATTERN.match(name):
            log.node(body.key_nodes[name], f"invalid field name '{name}': use lowercase letters, digits and _, "
                                           f"starting with a letter or _, at most 63 characters")
        elif type_name not in FIELD_TYPES:
            shown = f"'{type_name}'" if type_name is not None else describe(type_node)
            hint = did_you_mean(type_name, FIELD_TYPES) if type_name else ""
            log.node(node_of(type_node), f"unknown type {shown} for field '{name}'{hint}"
                                         f"{'' if hint else ' (types: ' + ', '.join(FIELD_TYPES) + ')'}")
            bad.add(name)
        elif name in standard and standard[name] != type_name:
            table = "subscriber" if section == "subscriber_fields" else "event"
            log.node(node_of(type_node), f"'{name}' is a standard {table} field of type {standard[name]}; "
                                         f"it cannot be redeclared as {type_name}")
        elif name not in standard:
            declared[name] = type_name
    return declared, frozenset(bad)
