"""Segment model -> sqlglot expressions (tree.py's builders in the words of `SQL`),
and the standalone query of a segment. Values only enter as literals (dialects.py);
identifiers only come from the field catalog, the relation names below and the planner."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from ..errors import UserError
from . import tree
from .dialects import DATE, LITERALS, TIMESTAMP, cast, fold_sql, render, string_literal, timestamp_literal
from .fields import FieldCatalog
from .model import EventFilter, Project
from .plan import distinct_event_aggregates
from .tree import Language
from .utc import naive_utc

# Relations a standalone segment query reads (in the run and the published warehouse alike).
SUBSCRIBERS = "subscribers"
EVENTS = "events"
MEMBERSHIP = "segment_membership"
EVENT_COUNTS = "event_counts"

_COMPARISONS: dict[str, type[exp.Binary]] = {"is": exp.EQ, "gt": exp.GT, "gte": exp.GTE, "lt": exp.LT,
                                              "lte": exp.LTE}


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
    a keyword in any dialect we render to. The nodes are built directly: `exp.column()`
    copies and regex-checks each part, a third of compiling 1,000 definitions."""
    return exp.Column(
        this=exp.Identifier(this=name, quoted=_needs_quotes(name)),
        table=exp.Identifier(this=table, quoted=_needs_quotes(table)) if table else None,
    )


def with_cte(query: exp.Select, name: str, cte: exp.Expr) -> exp.Select:
    """`WITH name AS (cte)` added to query (nodes built directly: `Select.with_` parses SQL)."""
    node = exp.CTE(this=cte, alias=exp.TableAlias(this=exp.Identifier(this=name, quoted=_needs_quotes(name))))
    existing = query.args.get("with_")
    if existing is None:
        query.set("with_", exp.With(expressions=[node]))
    else:
        existing.append("expressions", node)
    return query


# --------------------------------------------------------------------------- predicates


def two_valued(predicate: exp.Expr) -> exp.Expr:
    """NULL (unknown, e.g. a missing value) becomes FALSE."""
    return exp.Coalesce(this=predicate, expressions=[exp.false()])


def negate(predicate: exp.Expr) -> exp.Expr:
    # Parenthesize anything but a function call or a column, so the text reads
    # as what it means (`NOT (x IS NOT NULL)`, not `NOT x IS NOT NULL`).
    simple = isinstance(predicate, exp.Func | exp.Column | exp.Paren) and not isinstance(predicate, exp.Connector)
    return exp.Not(this=predicate if simple else exp.paren(predicate))


def _is_set(c: exp.Expr, field_type: str) -> exp.Expr:
    if field_type == "list":  # NULL for a missing list: made FALSE by two_valued
        return exp.GT(this=exp.ArraySize(this=c), expression=exp.Literal.number(0))
    return exp.Is(this=c, expression=exp.Not(this=exp.Null()))


def _text_test(test: str, c: exp.Expr, value: exp.Expr) -> exp.Expr:
    # STRPOS/STARTS_WITH/ENDS_WITH, never LIKE: '%' and '_' in values are literal.
    if test == "contains":
        return exp.GT(this=exp.StrPosition(this=c, substr=value), expression=exp.Literal.number(0))
    return (exp.StartsWith if test == "starts_with" else exp.EndsWith)(this=c, expression=value)


def _has(how: str, c: exp.Expr, tags: Sequence[str]) -> exp.Expr:
    var = exp.to_identifier("tag")
    folded = exp.Transform(this=c, expression=exp.Lambda(this=fold_sql(var.copy()), expressions=[var]))
    node = exp.ArrayOverlaps if how == "any" else exp.ArrayContainsAll
    return node(this=folded, expression=exp.Array(expressions=[string_literal(x) for x in tags]))


SQL = Language(
    all=lambda parts: exp.and_(*parts, copy=False) if parts else exp.true(),
    any=lambda parts: exp.or_(*parts, copy=False) if parts else exp.false(), negate=negate, two_valued=two_valued,
    compare=lambda op, a, b: _COMPARISONS[op](this=a, expression=b), value=lambda v, t: LITERALS[t](v),
    column=field_column, copy=lambda c: c.copy(), fold=fold_sql, is_set=_is_set, never=lambda c: exp.false(),
    isin=lambda c, values, t: exp.In(this=c, expressions=[LITERALS[t](v) for v in values]),
    between=lambda c, low, high: exp.Between(this=c, low=low, high=high),
    cast=lambda c, t: cast(c, DATE if t == "date" else TIMESTAMP), text_test=_text_test, has=_has,
)
# See tree.py; the event rows a filter counts may be NULL (wrap them in two_valued).
field_predicate = functools.partial(tree.field_predicate, SQL)
event_condition = functools.partial(tree.event_condition, SQL)
segment_predicate = functools.partial(tree.segment_predicate, SQL)


# --------------------------------------------------------------------------- standalone query


def event_counts_cte(aggregates: dict[str, EventFilter], catalog: FieldCatalog, as_of: datetime,
                     column_name: Callable[[str], str]) -> exp.Select:
    """One scan of `events`: per subscriber, `COUNT(*) FILTER (WHERE ...)` per
    distinct aggregate. The WHERE prunes rows no aggregate can count."""
    event_column = functools.partial(field_column, table=EVENTS)

    def count(f: EventFilter) -> exp.Expr:
        where = exp.Where(this=event_condition(f, catalog, as_of, event_column))
        return exp.Filter(this=exp.Count(this=exp.Star()), expression=where)

    counts = [exp.alias_(count(f), column_name(key), copy=False) for key, f in aggregates.items()]
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


def _count_column(aggregate_key: str) -> str:
    """An aggregate's column in the standalone query."""
    return f"n_{aggregate_key}"


def segment_query(project: Project, key: str, as_of: datetime) -> exp.Select:
    """`subscriber_id` of every member of segment `key`, from `subscribers`, `events` and, for
    segment filters, the computed `segment_membership(segment, subscriber_id)` (never the
    referenced segment's query), so it runs in the published warehouse as in a run."""
    if key not in project.segments:
        raise UserError(f"unknown segment '{key}'")
    segment, as_of = project.segments[key], naive_utc(as_of)
    aggregates = distinct_event_aggregates([segment])
    subscriber_column = functools.partial(field_column, table=SUBSCRIBERS)

    def event_count(f: EventFilter) -> exp.Expr:
        n = field_column(_count_column(f.aggregate_key()), table=EVENT_COUNTS)
        return exp.Coalesce(this=n, expressions=[exp.Literal.number(0)])

    def member_of(ref: str) -> exp.Expr:
        members = (
            exp.select(field_column("subscriber_id", table=MEMBERSHIP))
            .from_(exp.table_(MEMBERSHIP), copy=False)
            .where(exp.EQ(this=field_column("segment", table=MEMBERSHIP), expression=string_literal(ref)), copy=False)
        )
        return two_valued(exp.In(this=subscriber_column("subscriber_id"), query=exp.Subquery(this=members)))

    predicate = segment_predicate(segment, project.catalog, as_of, event_count, member_of, subscriber_column)
    query = exp.select(subscriber_column("subscriber_id")).from_(exp.table_(SUBSCRIBERS), copy=False)
    if aggregates:
        cte = event_counts_cte(aggregates, project.catalog, as_of, _count_column)
        query = with_cte(query, EVENT_COUNTS, cte)
        # The Join node itself: `Select.join()` would parse a "LEFT JOIN" text to build it (~1 ms).
        on = exp.EQ(this=field_column("subscriber_id", table=EVENT_COUNTS),
                    expression=subscriber_column("subscriber_id"))
        query.append("joins", exp.Join(this=exp.table_(EVENT_COUNTS), on=on, side="LEFT"))
    return query.where(predicate, copy=False).order_by(subscriber_column("subscriber_id"), copy=False)


def compile_segment(project: Project, key: str, as_of: datetime, dialect: str = "duckdb",
                    pretty: bool = True) -> str:
    """The text of `segment_query` in `dialect` (`duckdb` or `spark`)."""
    # The tree is built for this call only: the generator need not copy it first.
    return render(segment_query(project, key, as_of), dialect, pretty=pretty, copy=False)
