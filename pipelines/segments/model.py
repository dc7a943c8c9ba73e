"""Typed model of segment and audience definitions, which validates what it reads.

The loader validates a file's `yaml_tree.to_data` tree with a context
(`DefinitionFile.read`). Models check the structure; validators check what needs
the project (declared fields, the registry's operators, known segments) and read
each `value` with value_rules.py. The innermost model that sees an error words it
and places it at its YAML node (`_Node._read`).

Code that receives a model can trust it: operators fit field types, values are
normalized (`datetime.date`, tuples, `between` as `(low, high)`). Built in Python
(no context), models take values as given.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from ruamel.yaml.nodes import ScalarNode

from . import value_rules
from .definition_rules import NAME_MAX, RESERVED_AUDIENCE_FIELDS, DeclaredFields
from .fields import FieldCatalog
from .operators import OPERATORS, operators_of_type
from .problems import ProblemLog
from .value_rules import Wrong
from .yaml_tree import YamlMap, YamlSeq, describe, did_you_mean, is_null, node_of, text_of, unknown_key

_INTERNAL = ("kind", "key", "path")  # model fields that no YAML key sets
BAD: Any = object()  # no `value` given
HOLDOUT_MAX_PERCENT = 50


# -- errors: raised by validators, worded and placed by `_Node._read` -------------------------


def _problem(message: str, at: str = "node") -> PydanticCustomError:
    """A problem at the value being validated (`at="node"`), at its key ("key")
    or at the mapping that holds it ("map")."""
    return PydanticCustomError("problem", "{message}", {"message": message, "at": at})


def _at(*problems: tuple[Any, str]) -> PydanticCustomError:
    """Problems at nodes of their own: (node, message) pairs."""
    return PydanticCustomError("placed", "{problems}", {"problems": problems})


def _reported() -> PydanticCustomError:
    """Invalid, and already reported (or, for a field declared with a bad type, reported in _fields.yaml)."""
    return PydanticCustomError("reported", "reported")


def _from_yaml(value: object) -> bool:
    return isinstance(value, YamlMap | YamlSeq | ScalarNode)


def _walk(data: Any, loc: tuple) -> Any:
    for part in loc:
        data = data[part] if isinstance(data, YamlMap | YamlSeq) else None
    return data


# -- slots read from YAML nodes ----------------------------------------------------------------


def _text(message: str, ok: Callable[[str], object] = lambda text: True) -> BeforeValidator:
    """A text slot: a scalar's source text (`02134` stays "02134"); `message` says what is expected.
    `ok` decides which texts are fine (`bool`: not empty, `str.strip`: not blank)."""

    def read(value: Any) -> Any:
        if not _from_yaml(value):
            return value
        text = text_of(value)
        if text is None or not ok(text):
            raise _problem(f"{message}, not {describe(value)}")
        return text

    return BeforeValidator(read)


def _list(key: str, non_empty: bool) -> BeforeValidator:
    def read(value: Any) -> Any:
        if _from_yaml(value) and (not isinstance(value, YamlSeq) or (non_empty and not value)):
            raise _problem(f"'{key}' must be {'a non-empty list' if non_empty else 'a list'}, not {describe(value)}")
        return value

    return BeforeValidator(read)


def _read_value(what: str, rule: Callable[[str, Any], Any], field_type: str, value: Any) -> Any:
    """`value` read by a value_rules rule; "{what} needs ..." at the wrong node if it fails."""
    try:
        return rule(field_type, node_of(value))
    except Wrong as wrong:
        got = wrong.detail or f"got {describe(wrong.node)}"
        raise _at((wrong.node, f"{what} needs {wrong.expected}; {got}")) from None


def _rule(what: str, rule: Callable[[str, Any], Any]) -> BeforeValidator:
    """A number slot checked by a value_rules rule."""
    return BeforeValidator(lambda value, info: _read_value(what, rule, "integer", value)
                           if _from_yaml(value) and info.context else value)


def _short(name: str) -> str:
    if len(name) > NAME_MAX:
        raise _problem(f"'name' is {len(name)} characters long; at most {NAME_MAX} are allowed")
    return name


def _nullable(value: Any) -> Any:
    return None if _from_yaml(value) and is_null(value) else value


Name = Annotated[str, _text("'name' must be a non-empty string", bool), AfterValidator(_short)]
Description = Annotated[str | None, _text("'description' must be a string"), BeforeValidator(_nullable)]
# A `Literal` slot reads the text; anything else fails the Literal and is described.
Choice = BeforeValidator(lambda value: value if text_of(value) is None else text_of(value))


# -- nodes -------------------------------------------------------------------------------------


class _Node(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)
    # How messages name this node: "missing required key 'x' in {what}", "{a_what} must be a mapping".
    names: ClassVar[tuple[str, str]] = ("", "")  # (what, a_what)
    yaml_required: ClassVar[tuple[str, ...]] = ()  # required in a file though the model has a default

    @classmethod
    def yaml_keys(cls) -> tuple[str, ...]:
        return tuple(name for name in cls.model_fields if name not in _INTERNAL)

    @classmethod
    def _names(cls, context: dict) -> tuple[str, str]:
        return cls.names

    @classmethod
    def _defaults(cls, data: YamlMap, context: dict) -> dict[str, Any]:
        """Entries the file does not spell (the key and path of a definition)."""
        return {}

    @model_validator(mode="wrap")
    @classmethod
    def _read(cls, data: Any, handler: Callable[[Any], Any], info: ValidationInfo) -> Any:
        """From YAML: report every error of this node (nested nodes report their own)
        into the context's log and fail with `reported`."""
        context = info.context
        if not context or not _from_yaml(data):
            return handler(data)
        if isinstance(data, YamlMap):
            data.report_keys(context["log"])
        errors: list[Any] = [{"type": "missing", "loc": (key,)} for key in cls.yaml_required
                  if isinstance(data, YamlMap) and key not in data]
        try:
            node = handler({**cls._defaults(data, context), **data} if isinstance(data, YamlMap) else data)
        except ValidationError as exc:
            errors += exc.errors(include_url=False)
        for error in errors:
            cls._report(data, error, context)
        if errors:
            raise _reported()
        return node

    @classmethod
    def _report(cls, data: Any, error: Any, context: dict) -> None:
        kind, loc, ctx = error["type"], error["loc"], error.get("ctx") or {}
        log: ProblemLog = context["log"]
        if kind == "reported":
            return
        if kind == "placed":
            for node, message in ctx["problems"]:
                log.node(node, message)
            return
        at = "node"
        what, a_what = cls._names(context)
        if kind == "problem":
            message, at = ctx["message"], ctx["at"]
        elif kind == "missing":
            message, at = f"missing required key '{loc[-1]}' in {what}", "map"
        elif kind == "extra_forbidden":
            message, at = unknown_key(str(loc[-1]), cls.yaml_keys()), "key"
        elif kind == "literal_error":
            choices = re.findall(r"'([^']*)'", ctx["expected"])
            allowed = ctx["expected"] if len(choices) == 2 else f"one of {ctx['expected']}"
            text = text_of(_walk(data, loc))
            shown = f"'{text}'" if text is not None else describe(_walk(data, loc))
            hint = did_you_mean(text, choices) if text else ""
            message = f"'{loc[-1]}' must be {allowed}, not {shown}{hint}"
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            message = f"{a_what} must be a mapping (key: value), not {describe(_walk(data, loc))}"
        else:  # a type the slots above never let through; still one honest line
            message = f"'{'.'.join(map(str, loc))}': {error['msg']}"
        if at == "key":
            node = _walk(data, loc[:-1]).key_nodes[loc[-1]]
        else:
            node = node_of(_walk(data, loc[:-1] if at == "map" else loc))
        log.node(node, message)

    @field_validator(*_INTERNAL, mode="before", check_fields=False)
    @classmethod
    def _internal(cls, value: Any, info: ValidationInfo) -> Any:
        if _from_yaml(value):
            raise _problem(unknown_key(str(info.field_name), cls.yaml_keys()), at="key")
        return value

    # Two nodes are equal when they mean the same thing, whichever file holds them:
    # equality, hashing and `definition_sha256` ignore `path` (excluded from dumps).
    def _identity(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False, default=str)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._identity()))


class FieldFilter(_Node):
    """`{field, op, value}` over subscriber fields, or, in an event filter's
    `where`, over the event's own fields (context scope "event")."""

    kind: Literal["field"] = "field"
    field: Annotated[str, _text("'field' must be a field name", str.strip)]
    op: str  # checked against the live registry: register() may add operators after import
    value: Any = Field(default=BAD, validate_default=True)

    @classmethod
    def _names(cls, context: dict) -> tuple[str, str]:
        event = context.get("scope") == "event"
        return ("'where' filter", "a 'where' filter") if event else ("field filter", "a field filter")

    @staticmethod
    def _catalog(context: dict) -> tuple[dict[str, str], frozenset[str]]:
        declared: DeclaredFields = context["declared"]
        if context.get("scope") == "event":
            return declared.catalog.event, declared.broken_event
        return declared.catalog.subscriber, declared.broken_subscriber

    @classmethod
    def _type_of(cls, info: ValidationInfo) -> str | None:
        return cls._catalog(info.context)[0].get(info.data.get("field", "")) if info.context else None

    @field_validator("field")
    @classmethod
    def _known_field(cls, name: str, info: ValidationInfo) -> str:
        if not info.context:
            return name
        fields, broken = cls._catalog(info.context)
        if name in broken and name not in fields:
            raise _reported()
        if name not in fields:
            label = "event field" if info.context.get("scope") == "event" else "field"
            hint = did_you_mean(name, fields) or " (neither a standard field nor declared in _fields.yaml)"
            raise _problem(f"unknown {label} '{name}'{hint}")
        return name

    @field_validator("op", mode="wrap")
    @classmethod
    def _operator(cls, value: Any, handler: Callable[[Any], Any], info: ValidationInfo) -> str:
        text = text_of(value) if _from_yaml(value) else value
        if text is None:
            raise _problem(f"'op' must be an operator name, not {describe(value)}")
        field_type = cls._type_of(info)
        allowed = operators_of_type(field_type) if field_type else tuple(OPERATORS)
        op = handler(text)
        if op not in OPERATORS:
            raise _problem(f"unknown operator '{text}'{did_you_mean(text, allowed)}")
        if field_type and op not in allowed:
            raise _problem(f"operator '{op}' does not apply to {field_type} field '{info.data['field']}' "
                           f"({field_type} fields allow: {', '.join(allowed)})")
        return op

    @field_validator("value", mode="before")
    @classmethod
    def _value(cls, value: Any, info: ValidationInfo) -> Any:
        if not info.context:
            return None if value is BAD else value  # built in Python: as given
        op, field_type = info.data.get("op"), cls._type_of(info)
        if op is None or field_type is None:
            return None  # the field or the operator is wrong, and reported
        rule, what = OPERATORS[op].value, f"operator '{op}' on field '{info.data['field']}'"
        if rule is None:
            if value is not BAD:
                raise _problem(f"operator '{op}' takes no 'value'", at="key")
            return None
        if value is BAD:
            raise _problem(f"{what} needs a 'value'", at="map")
        return _read_value(what, rule, field_type, value)


def _known_segment(ref: str, info: ValidationInfo) -> str:
    known = info.context.get("segments") if info.context else None
    if known is not None and ref not in known:
        raise _problem(f"unknown segment '{ref}'{did_you_mean(ref, known)}")
    return ref


class SegmentFilter(_Node):
    kind: Literal["segment"] = "segment"
    segment: Annotated[str, _text("'segment' must be a segment key", str.strip), AfterValidator(_known_segment)]
    op: Annotated[Literal["is", "is_not"], Choice]
    names: ClassVar[tuple[str, str]] = ("segment filter", "")

    @classmethod
    def _defaults(cls, data: YamlMap, context: dict) -> dict[str, Any]:
        # Every well-formed reference, valid or not, so cycles are found in one
        # pass even while other parts of a file are wrong.
        ref = text_of(data.get("segment"))
        if ref and ref.strip():
            context["references"].append((ref, data.node))
        return super()._defaults(data, context)


class EventCount(_Node):
    op: Annotated[Literal["gt", "gte", "lt", "lte", "is"], Choice] = "gte"
    value: Annotated[int, _rule("count 'value'", value_rules.count)] = 1
    yaml_required: ClassVar[tuple[str, ...]] = ("op", "value")
    names: ClassVar[tuple[str, str]] = ("count", "'count'")


def _where_item(value: Any) -> Any:
    if isinstance(value, YamlMap):
        for other in ("segment", "event"):
            if other in value:
                raise _at((value.key_nodes[other], f"a 'where' filter tests the event's own fields with 'field', "
                                                   f"not '{other}'"))
    return value


class EventFilter(_Node):
    kind: Literal["event"] = "event"
    event: Annotated[str, _text("'event' must be a non-empty event name", str.strip)]
    op: Annotated[Literal["performed", "not_performed"], Choice]
    in_last_days: Annotated[int | None, _rule("'in_last_days'", value_rules.days)] = None
    where: Annotated[tuple[Annotated[FieldFilter, BeforeValidator(_where_item)], ...], _list("where", False)] = ()
    count: EventCount = EventCount()
    names: ClassVar[tuple[str, str]] = ("event filter", "")

    @model_validator(mode="wrap")
    @classmethod
    def _event_scope(cls, data: Any, handler: Callable[[Any], Any], info: ValidationInfo) -> Any:
        """`where` filters test the event's own fields."""
        if not info.context:
            return handler(data)
        info.context["scope"] = "event"
        try:
            return handler(data)
        finally:
            info.context["scope"] = "subscriber"

    def aggregate_key(self) -> str:
        """Identity of the event count this filter needs: (event, window, where). Filters that
        differ only in `op` or `count` share one aggregate, so events are scanned once per key."""
        payload = {"event": self.event, "in_last_days": self.in_last_days,
                   "where": [w.model_dump(mode="json") for w in self.where]}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


FILTER_KINDS = ("field", "segment", "event")
ALL_FILTER_KEYS = tuple(dict.fromkeys(k for m in (FieldFilter, SegmentFilter, EventFilter) for k in m.yaml_keys()))


def _one_kind(value: Any) -> Any:
    """A filter is a mapping with exactly one of `field`, `segment` or `event`."""
    if not _from_yaml(value):
        return value
    if not isinstance(value, YamlMap):
        raise _problem(f"a filter must be a mapping with one of 'field', 'segment' or 'event', not {describe(value)}")
    kinds = [k for k in FILTER_KINDS if k in value]
    if len(kinds) == 1:
        return value
    unknown = [k for k in value if k not in ALL_FILTER_KEYS]
    problems = [(value.key_nodes[k], f"unknown key '{k}'{did_you_mean(k, ALL_FILTER_KEYS)}") for k in unknown]
    if kinds:
        listed = " and ".join(f"'{k}'" for k in kinds)
        problems.append((value.node, f"a filter must have exactly one of 'field', 'segment' or 'event', "
                                     f"but has {listed}"))
    elif not unknown:
        problems.append((value.node, "a filter needs one of 'field', 'segment' or 'event'"))
    raise _at(*problems)


def _kind_of(value: Any) -> str | None:
    if isinstance(value, YamlMap):
        return next(k for k in FILTER_KINDS if k in value)
    return value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)


Filter = Annotated[
    Annotated[FieldFilter, Tag("field")] | Annotated[SegmentFilter, Tag("segment")]
    | Annotated[EventFilter, Tag("event")],
    Discriminator(_kind_of),
    BeforeValidator(_one_kind),
]


class Group(_Node):
    match: Annotated[Literal["all", "any", "none"], Choice] = "all"
    filters: Annotated[tuple[Filter, ...], _list("filters", True)]
    names: ClassVar[tuple[str, str]] = ("group", "a group")


class _Definition(_Node):
    key: str
    name: Name
    description: Description = None
    path: str = Field(default="", exclude=True)

    @classmethod
    def _defaults(cls, data: YamlMap, context: dict) -> dict[str, Any]:
        return {**super()._defaults(data, context), "key": context["key"], "path": context["path"]}

    def definition_sha256(self) -> str:
        """A stable hash of the definition's meaning (not its formatting or comments)."""
        return hashlib.sha256(self._identity().encode()).hexdigest()


class Segment(_Definition):
    match: Annotated[Literal["any", "all"], Choice] = "any"
    groups: Annotated[tuple[Group, ...], _list("groups", True)]
    names: ClassVar[tuple[str, str]] = ("segment", "a segment definition")

    def references(self) -> list[str]:
        """Keys of the segments this one reads (segment filters), in order."""
        return list(dict.fromkeys(f.segment for g in self.groups for f in g.filters if isinstance(f, SegmentFilter)))

    def event_filters(self) -> list[EventFilter]:
        return [f for g in self.groups for f in g.filters if isinstance(f, EventFilter)]

    def field_filters(self) -> list[FieldFilter]:
        return [f for g in self.groups for f in g.filters if isinstance(f, FieldFilter)]


def _percent(value: Any) -> Any:
    if not _from_yaml(value):
        return value
    try:
        number = value_rules.number("number", value)
    except Wrong:
        number = -1
    if 0 <= number <= HOLDOUT_MAX_PERCENT:
        return float(number)
    raise _problem(f"holdout 'percent' must be a number from 0 to {HOLDOUT_MAX_PERCENT}, not {describe(value)}")


class Holdout(_Node):
    """A stable control group: held out iff sha256(salt:subscriber_id) % 10000 < percent * 100."""

    percent: Annotated[float, BeforeValidator(_percent)]
    salt: Annotated[str, _text("holdout 'salt' must be a non-empty string", bool)]
    names: ClassVar[tuple[str, str]] = ("'holdout'", "'holdout'")


def _audience_field(column: str, info: ValidationInfo) -> str:
    if not info.context:
        return column
    if column in RESERVED_AUDIENCE_FIELDS:
        raise _problem(f"field '{column}' clashes with the recipients column of that name "
                       f"(reserved: {', '.join(RESERVED_AUDIENCE_FIELDS)})")
    declared: DeclaredFields = info.context["declared"]
    if column in declared.broken_subscriber:
        raise _reported()  # the cause is reported once, in _fields.yaml
    if column not in declared.catalog.subscriber:
        hint = did_you_mean(column, declared.catalog.subscriber) or " (neither a standard field nor declared)"
        raise _problem(f"unknown field '{column}'{hint}")
    return column


def _distinct(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _segment_keys(key: str) -> Any:
    return Annotated[tuple[Annotated[str, _text(f"'{key}' lists segment keys"), AfterValidator(_known_segment)], ...],
                     _list(key, key == "include"), AfterValidator(_distinct)]


class Audience(_Definition):
    include: _segment_keys("include")  # type: ignore[valid-type]
    exclude: _segment_keys("exclude") = ()  # type: ignore[valid-type]
    fields: Annotated[tuple[Annotated[str, _text("'fields' lists subscriber field names"),
                                      AfterValidator(_audience_field)], ...],
                      _list("fields", False), AfterValidator(_distinct)] = ()
    holdout: Annotated[Holdout | None, BeforeValidator(_nullable)] = None
    names: ClassVar[tuple[str, str]] = ("audience", "an audience definition")

    @classmethod
    def _defaults(cls, data: YamlMap, context: dict) -> dict[str, Any]:
        return {**super()._defaults(data, context), "name": context["key"]}  # `name` defaults to the key


class Project(BaseModel):
    """All definitions of one `segment_defs/` folder."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    catalog: FieldCatalog = Field(default_factory=FieldCatalog)
    segments: dict[str, Segment] = Field(default_factory=dict)
    audiences: dict[str, Audience] = Field(default_factory=dict)

