"""Segment model -> sqlglot expressions.

One builder per operator family and positive operator (`_BUILDERS`); the
negative operators are never built directly: each one is `NOT` of its positive
partner after the partner has been made two-valued with `COALESCE(..., FALSE)`.
That single rule gives the spec's complement semantics (rule 3): a subscriber
with a missing value is in `is_not`, `not_in`, `has_none`, ... and never in a
positive operator or in `gt`/`before`/`starts_with`/`has_all`/....

Values only ever enter the tree as literals (`exp.Literal`, `exp.Boolean`,
casts of string literals); identifiers only come from the field catalog, the
fixed relation names below and the planner's column names. A definition can
change literal values, never the query's shape.

Rendering to text (`compile_segment`) is the last step, per dialect.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from ..errors import UserError
from .case import fold
from .dialects import render
from .fields import NEGATION_OF, FieldCatalog
from .model import EventCount, EventFilter, FieldFilter, Filter, Group, Project, Segment, SegmentFilter
from .numeric import exact_bound, exact_members
from .operators import OPERATORS
from .plan import distinct_event_aggregates, naive_utc, window_start

ColumnResolver = Callable[[str], exp.Expression]
EventCountResolver = Callable[[EventFilter], exp.Expression]
MemberResolver = Callable[[str], exp.Expression]
# An engine may evaluate some field filters ahead of the query (pipelines/engine/encoded.py):
# it returns the (two-valued) column holding a filter's result, or None to build the filter here.
PrecomputedResolver = Callable[[FieldFilter], exp.Expression | None]

# Relations a standalone segment query reads (present in the run and in the
# published warehouse alike).
SUBSCRIBERS = "subscribers"
EVENTS = "events"
MEMBERSHIP = "segment_membership"
EVENT_COUNTS = "event_counts"

_DATE = exp.DataType.build("DATE")
# Naive timestamps meaning UTC: DuckDB TIMESTAMP, Spark TIMESTAMP_NTZ.
_TIMESTAMP = exp.DataType.build("TIMESTAMPNTZ")
_DOUBLE = exp.DataType.build("DOUBLE")


# --------------------------------------------------------------------------- identifiers

_PLAIN_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")  # \Z: "tier\n" must be quoted
# Words either dialect treats as keywords: a field named `order` or `select` must be
# quoted (sqlglot's Spark generator would leave `subscribers.select` bare).
_KEYWORDS = frozenset(
    word
    for name in ("duckdb", "spark")
    for word in Dialect.get_or_raise(name).tokenizer_class.KEYWORDS
    if _PLAIN_IDENTIFIER.match(word)
)


@functools.lru_cache(maxsize=4096)
def _needs_quotes(name: str) -> bool:
    return not _PLAIN_IDENTIFIER.match(name) or name.upper() in _KEYWORDS


def field_column(name: str, table: str | None = None) -> exp.Column:
    """A column of the field catalog, quoted when it is not a plain identifier or is
    a keyword in any dialect we render to."""
    # Nodes built directly: `exp.column()` copies and regex-checks each part, which
    # was a third of compiling 1,000 definitions.
    return exp.Column(
        this=exp.Identifier(this=name, quoted=_needs_quotes(name)),
        table=exp.Identifier(this=table, quoted=_needs_quotes(table)) if table else None,
    )


# --------------------------------------------------------------------------- literals


def with_cte(query: exp.Select, name: str, cte: exp.Expression) -> exp.Select:
    """`WITH name AS (cte)` added to query; the nodes built directly (`Select.with_`
    parses the name as SQL text)."""
    node = exp.CTE(this=cte, alias=exp.TableAlias(this=exp.Identifier(this=name, quoted=_needs_quotes(name))))
    existing = query.args.get("with_")
    if existing is None:
        query.set("with_", exp.With(expressions=[node]))
    else:
        existing.append("expressions", node)
    return query


def _cast(expression: exp.Expression, to: exp.DataType) -> exp.Cast:
    """CAST(expression AS to) with a fresh type node (`exp.cast` deep-copies `to`)."""
    return exp.Cast(this=expression, to=exp.DataType(this=to.this, nested=False))


def string_literal(value: str) -> exp.Literal:
    if not isinstance(value, str):
        raise TypeError(f"expected a string value, got {value!r}")
    return exp.Literal.string(value)


def number_literal(value: int | float) -> exp.Expression:
    """Integers stay exact BIGINT literals. Floats become `CAST('<repr>' AS DOUBLE)`:
    a bare `0.1` is a DECIMAL in DuckDB, and DECIMAL -> DOUBLE can round
    differently from parsing the shortest repr, which round-trips exactly."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    if isinstance(value, int):
        return exp.Literal.number(str(value))
    return _cast(exp.Literal.string(repr(float(value))), _DOUBLE)


def boolean_literal(value: bool) -> exp.Boolean:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, got {value!r}")
    return exp.Boolean(this=value)


def date_literal(value: date) -> exp.Expression:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise TypeError(f"expected a date, got {value!r}")
    return _cast(exp.Literal.string(value.isoformat()), _DATE)


def timestamp_literal(value: datetime) -> exp.Expression:
    return _cast(exp.Literal.string(value.isoformat(sep=" ")), _TIMESTAMP)


def _lower(e: exp.Expression) -> exp.Expression:
    """`e` case-folded (case.py). DuckDB's LOWER follows the table except for two
    characters, fixed around it; the Spark dialect rewrites LOWER into a TRANSLATE
    of the whole table (dialects.py)."""
    before = exp.Replace(this=e, expression=exp.Literal.string("İ"), replacement=exp.Literal.string("i"))
    return exp.Replace(this=exp.Lower(this=before), expression=exp.Literal.string("ς"),
                       replacement=exp.Literal.string("σ"))


def _lowered_string(value: str) -> exp.Expression:
    # Folded here with the same table the engines apply to the column (rule 4).
    return string_literal(fold(value))


def _false() -> exp.Boolean:
    return exp.Boolean(this=False)


def _true() -> exp.Boolean:
    return exp.Boolean(this=True)


def two_valued(predicate: exp.Expression) -> exp.Expression:
    """NULL (unknown, e.g. a missing value) becomes FALSE."""
    return exp.Coalesce(this=predicate, expressions=[_false()])


def negate(predicate: exp.Expression) -> exp.Expression:
    # Parenthesize anything but a function call or a column, so the text reads
    # as what it means (`NOT (x IS NOT NULL)`, not `NOT x IS NOT NULL`).
    simple = isinstance(predicate, exp.Func | exp.Column | exp.Paren) and not isinstance(predicate, exp.Connector)
    return exp.Not(this=predicate if simple else exp.paren(predicate))


def all_of(conditions: Sequence[exp.Expression]) -> exp.Expression:
    return exp.and_(*conditions, copy=False) if conditions else _true()


def any_of(conditions: Sequence[exp.Expression]) -> exp.Expression:
    return exp.or_(*conditions, copy=False) if conditions else _false()


# --------------------------------------------------------------------------- operator families
# Each builder returns the POSITIVE predicate; it may be NULL on missing values
# (the caller makes it two-valued). Signature: (column, value, field_type, as_of).

Builder = Callable[[exp.Expression, Any, str, datetime], exp.Expression]


def _is_set(c: exp.Expression, _v: Any, _t: str, _a: datetime) -> exp.Expression:
    return exp.Is(this=c, expression=exp.Not(this=exp.Null()))


_STRING: dict[str, Builder] = {
    "is": lambda c, v, t, a: exp.EQ(this=_lower(c), expression=_lowered_string(v)),
    "in": lambda c, v, t, a: exp.In(this=_lower(c), expressions=[_lowered_string(x) for x in v]),
    # STRPOS/STARTS_WITH/ENDS_WITH, not LIKE: '%' and '_' in values are literal.
    "contains": lambda c, v, t, a: exp.GT(
        this=exp.StrPosition(this=_lower(c), substr=_lowered_string(v)), expression=exp.Literal.number(0)
    ),
    "starts_with": lambda c, v, t, a: exp.StartsWith(this=_lower(c), expression=_lowered_string(v)),
    "ends_with": lambda c, v, t, a: exp.EndsWith(this=_lower(c), expression=_lowered_string(v)),
    "is_set": _is_set,
}

_COMPARE: dict[str, type[exp.Binary]] = {"is": exp.EQ, "gt": exp.GT, "gte": exp.GTE, "lt": exp.LT, "lte": exp.LTE}


def _number_compare(op: str) -> Builder:
    """`c op v`, compared against a value of the column's own type (numeric.py: exact)."""
    def build(c: exp.Expression, v: Any, t: str, a: datetime) -> exp.Expression:
        bound = exact_bound(op, v, t)
        if isinstance(bound, bool):
            return _is_set(c, v, t, a) if bound else _false()
        return _COMPARE[bound[0]](this=c, expression=number_literal(bound[1]))

    return build


def _number_in(c: exp.Expression, v: Any, t: str, a: datetime) -> exp.Expression:
    members = exact_members(v, t)
    return exp.In(this=c, expressions=[number_literal(x) for x in members]) if members else _false()


def _number_between(c: exp.Expression, v: Any, t: str, a: datetime) -> exp.Expression:
    low, high = exact_bound("gte", v[0], t), exact_bound("lte", v[1], t)
    if isinstance(low, bool) or isinstance(high, bool):
        return exp.and_(_number_compare("gte")(c, v[0], t, a), _number_compare("lte")(c.copy(), v[1], t, a),
                        copy=False)
    return exp.Between(this=c, low=number_literal(low[1]), high=number_literal(high[1]))


_NUMBER: dict[str, Builder] = {
    "is": _number_compare("is"),
    "in": _number_in,
    "gt": _number_compare("gt"),
    "gte": _number_compare("gte"),
    "lt": _number_compare("lt"),
    "lte": _number_compare("lte"),
    "between": _number_between,
    "is_set": _is_set,
}

_BOOLEAN: dict[str, Builder] = {
    "is": lambda c, v, t, a: exp.EQ(this=c, expression=boolean_literal(v)),
    "is_set": _is_set,
}


def _utc_day(c: exp.Expression, field_type: str) -> exp.Expression:
    """The value's UTC calendar date (timestamps are naive UTC)."""
    return c if field_type == "date" else _cast(c, _DATE)


def _instant(c: exp.Expression, field_type: str) -> exp.Expression:
    """The value as a timestamp; a date means its midnight UTC."""
    return c if field_type == "timestamp" else _cast(c, _TIMESTAMP)


def _in_last_days(c: exp.Expression, days: int, field_type: str, as_of: datetime) -> exp.Expression:
    at = _instant(c, field_type)
    return exp.and_(
        exp.GTE(this=at, expression=timestamp_literal(window_start(as_of, days))),
        exp.LTE(this=at.copy(), expression=timestamp_literal(as_of)),
        copy=False,
    )


_TEMPORAL: dict[str, Builder] = {
    "before": lambda c, v, t, a: exp.LT(this=_utc_day(c, t), expression=date_literal(v)),
    "after": lambda c, v, t, a: exp.GT(this=_utc_day(c, t), expression=date_literal(v)),
    "on": lambda c, v, t, a: exp.EQ(this=_utc_day(c, t), expression=date_literal(v)),
    "between": lambda c, v, t, a: exp.Between(
        this=_utc_day(c, t), low=date_literal(v[0]), high=date_literal(v[1])
    ),
    "in_last_days": lambda c, v, t, a: _in_last_days(c, v, t, a),
    "is_set": _is_set,
}

_LAMBDA_VAR = "tag"


def _lowered_list(c: exp.Expression) -> exp.Expression:
    var = exp.to_identifier(_LAMBDA_VAR)
    return exp.Transform(this=c, expression=exp.Lambda(this=_lower(var.copy()), expressions=[var]))


def _lowered_array(values: Sequence[str]) -> exp.Expression:
    return exp.Array(expressions=[_lowered_string(v) for v in values])


_LIST: dict[str, Builder] = {
    # A missing list is the empty list: NULL results are made FALSE by the caller.
    "has_any": lambda c, v, t, a: exp.ArrayOverlaps(this=_lowered_list(c), expression=_lowered_array(v)),
    "has_all": lambda c, v, t, a: exp.ArrayContainsAll(this=_lowered_list(c), expression=_lowered_array(v)),
    "is_set": lambda c, v, t, a: exp.GT(this=exp.ArraySize(this=c), expression=exp.Literal.number(0)),
}

_BUILDERS: dict[str, dict[str, Builder]] = {
    "string": _STRING,
    "integer": _NUMBER,
    "number": _NUMBER,
    "boolean": _BOOLEAN,
    "date": _TEMPORAL,
    "timestamp": _TEMPORAL,
    "list": _LIST,
}


def field_predicate(f: FieldFilter, field_type: str, column: exp.Expression, as_of: datetime) -> exp.Expression:
    """A two-valued predicate for one field filter on `column` (of `field_type`)."""
    positive = NEGATION_OF.get(f.op, f.op)
    try:
        builder = _BUILDERS[field_type][positive]
    except KeyError:
        raise UserError(f"operator '{f.op}' does not apply to {field_type} field '{f.field}'") from None
    predicate = builder(column, f.value, field_type, naive_utc(as_of))
    if field_type not in OPERATORS[positive].null_safe:  # a builder that may return NULL
        predicate = two_valued(predicate)
    return negate(predicate) if f.op in NEGATION_OF else predicate


# --------------------------------------------------------------------------- events

_COUNT_COMPARISONS: dict[str, type[exp.Binary]] = {
    "gt": exp.GT,
    "gte": exp.GTE,
    "lt": exp.LT,
    "lte": exp.LTE,
    "is": exp.EQ,
}


def count_predicate(n: exp.Expression, count: EventCount) -> exp.Expression:
    return _COUNT_COMPARISONS[count.op](this=n, expression=number_literal(count.value))


def event_condition(
    f: EventFilter,
    catalog: FieldCatalog,
    as_of: datetime,
    column: ColumnResolver = field_column,
    precomputed: PrecomputedResolver | None = None,
) -> exp.Expression:
    """Which event rows a filter counts: its name (exact), not after `as_of`, in the
    window, and every `where` filter (same operator semantics, over event fields)."""
    as_of = naive_utc(as_of)
    conditions: list[exp.Expression] = [
        exp.EQ(this=column("event"), expression=string_literal(f.event)),
        exp.LTE(this=column("occurred_at"), expression=timestamp_literal(as_of)),
    ]
    if f.in_last_days is not None:
        start = window_start(as_of, f.in_last_days)
        conditions.append(exp.GTE(this=column("occurred_at"), expression=timestamp_literal(start)))
    for w in f.where:
        done = precomputed(w) if precomputed is not None else None
        conditions.append(
            done if done is not None
            else field_predicate(w, _field_type(catalog.event, w.field, "event"), column(w.field), as_of)
        )
    return all_of(conditions)


def event_predicate(f: EventFilter, n: exp.Expression) -> exp.Expression:
    """`performed` when the count `n` (never NULL) satisfies `count`; `not_performed` is its NOT."""
    performed = count_predicate(n, f.count)
    return negate(performed) if f.op == "not_performed" else performed


# --------------------------------------------------------------------------- segments


def _field_type(fields: dict[str, str], name: str, table: str) -> str:
    try:
        return fields[name]
    except KeyError:
        raise UserError(f"unknown {table} field '{name}'") from None


def filter_predicate(
    f: Filter,
    catalog: FieldCatalog,
    as_of: datetime,
    event_count: EventCountResolver,
    member_of: MemberResolver,
    column: ColumnResolver = field_column,
    precomputed: PrecomputedResolver | None = None,
) -> exp.Expression:
    if isinstance(f, FieldFilter):
        done = precomputed(f) if precomputed is not None else None
        if done is not None:
            return done
        return field_predicate(f, _field_type(catalog.subscriber, f.field, "subscriber"), column(f.field), as_of)
    if isinstance(f, SegmentFilter):
        member = member_of(f.segment)
        return negate(member) if f.op == "is_not" else member
    if isinstance(f, EventFilter):
        return event_predicate(f, event_count(f))
    raise TypeError(f"unknown filter {f!r}")


def combine(match: str, predicates: Sequence[exp.Expression]) -> exp.Expression:
    """all = AND, any = OR, none = NOT(any): no filter holds."""
    if match == "all":
        return all_of(predicates)
    if match == "any":
        return any_of(predicates)
    if match == "none":
        return negate(any_of(predicates))
    raise ValueError(f"unknown match '{match}'")


def group_predicate(
    group: Group,
    catalog: FieldCatalog,
    as_of: datetime,
    event_count: EventCountResolver,
    member_of: MemberResolver,
    column: ColumnResolver = field_column,
    precomputed: PrecomputedResolver | None = None,
) -> exp.Expression:
    return combine(
        group.match,
        [filter_predicate(f, catalog, as_of, event_count, member_of, column, precomputed) for f in group.filters],
    )


def segment_predicate(
    segment: Segment,
    catalog: FieldCatalog,
    as_of: datetime,
    event_count: EventCountResolver,
    member_of: MemberResolver,
    column: ColumnResolver = field_column,
    precomputed: PrecomputedResolver | None = None,
) -> exp.Expression:
    """The segment's membership condition for one subscriber row.

    The resolvers say where event counts (never NULL) and other segments'
    membership (never NULL) come from, so the standalone query and the one-pass
    engine share this builder. `column` maps a subscriber field to its column.
    """
    return combine(
        segment.match,
        [group_predicate(g, catalog, as_of, event_count, member_of, column, precomputed) for g in segment.groups],
    )


# --------------------------------------------------------------------------- standalone query


def event_counts_cte(
    aggregates: dict[str, EventFilter],
    catalog: FieldCatalog,
    as_of: datetime,
    column_name: Callable[[str], str],
    precomputed: PrecomputedResolver | None = None,
) -> exp.Select:
    """One scan of `events`: per subscriber, `COUNT(*) FILTER (WHERE ...)` per
    distinct aggregate. The WHERE prunes rows no aggregate can count."""

    def event_column(name: str) -> exp.Expression:
        return field_column(name, table=EVENTS)

    counts = [
        exp.alias_(
            exp.Filter(
                this=exp.Count(this=exp.Star()),
                expression=exp.Where(this=event_condition(f, catalog, as_of, event_column, precomputed)),
            ),
            column_name(key),
            copy=False,
        )
        for key, f in aggregates.items()
    ]
    names = sorted({f.event for f in aggregates.values()})
    prune = exp.and_(
        exp.LTE(this=event_column("occurred_at"), expression=timestamp_literal(naive_utc(as_of))),
        exp.In(this=event_column("event"), expressions=[string_literal(n) for n in names]),
        copy=False,
    )
    return (
        exp.select(event_column("subscriber_id"), *counts)
        .from_(exp.table_(EVENTS), copy=False)
        .where(prune, copy=False)
        .group_by(event_column("subscriber_id"), copy=False)
    )


def standalone_count_column(aggregate_key: str) -> str:
    return f"n_{aggregate_key}"


def segment_query(project: Project, key: str, as_of: datetime) -> exp.Select:
    """A query returning `subscriber_id` of every member of segment `key`, reading
    `subscribers`, `events` and, for segment filters, the computed membership
    `segment_membership(segment, subscriber_id)` (never the referenced segment's
    query), so it runs in the published warehouse as well as in a run."""
    try:
        segment = project.segments[key]
    except KeyError:
        raise UserError(f"unknown segment '{key}'") from None
    as_of = naive_utc(as_of)
    aggregates = distinct_event_aggregates([segment])

    def subscriber_column(name: str) -> exp.Expression:
        return field_column(name, table=SUBSCRIBERS)

    def event_count(f: EventFilter) -> exp.Expression:
        n = field_column(standalone_count_column(f.aggregate_key()), table=EVENT_COUNTS)
        return exp.Coalesce(this=n, expressions=[exp.Literal.number(0)])

    def member_of(ref: str) -> exp.Expression:
        members = (
            exp.select(field_column("subscriber_id", table=MEMBERSHIP))
            .from_(exp.table_(MEMBERSHIP), copy=False)
            .where(exp.EQ(this=field_column("segment", table=MEMBERSHIP), expression=string_literal(ref)), copy=False)
        )
        return two_valued(exp.In(this=subscriber_column("subscriber_id"), query=exp.Subquery(this=members)))

    predicate = segment_predicate(segment, project.catalog, as_of, event_count, member_of, subscriber_column)
    query = exp.select(subscriber_column("subscriber_id")).from_(exp.table_(SUBSCRIBERS), copy=False)
    if aggregates:
        cte = event_counts_cte(aggregates, project.catalog, as_of, standalone_count_column)
        query = with_cte(query, EVENT_COUNTS, cte)
        # The Join node itself: `Select.join()` would parse a "LEFT JOIN" text to build it (~1 ms).
        query.append("joins", exp.Join(
            this=exp.table_(EVENT_COUNTS),
            on=exp.EQ(
                this=field_column("subscriber_id", table=EVENT_COUNTS), expression=subscriber_column("subscriber_id")
            ),
            side="LEFT",
        ))
    return query.where(predicate, copy=False).order_by(subscriber_column("subscriber_id"), copy=False)


def compile_segment(
    project: Project, key: str, as_of: datetime, dialect: str = "duckdb", pretty: bool = True
) -> str:
    """The text of `segment_query` in `dialect` (`duckdb` or `spark`)."""
    # The tree is built for this call only: the generator need not copy it first.
    return render(segment_query(project, key, as_of), dialect, pretty=pretty, copy=False)
