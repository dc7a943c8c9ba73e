"""Segment model -> Polars expressions (tree.py's builders in the words of `POLARS`),
with the same shape as `to_sql.py`. Values enter as literals only."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import polars as pl

from . import tree
from .case import FOLD
from .operators import COMPARISONS

PL_TIMESTAMP = pl.Datetime("us")
_DTYPES: dict[str, pl.DataType] = {"string": pl.String(), "integer": pl.Int64(), "number": pl.Float64(),
                                   "boolean": pl.Boolean(), "date": pl.Date(), "timestamp": PL_TIMESTAMP}
_FOLD_FROM, _FOLD_TO = list(FOLD), list(FOLD.values())


def fold_polars(c: pl.Expr) -> pl.Expr:
    """Case-folded with case.py's table (Polars' own to_lowercase knows newer letters)."""
    return c.str.replace_many(_FOLD_FROM, _FOLD_TO)


def _has(how: str, c: pl.Expr, tags: Sequence[str]) -> pl.Expr:
    folded = c.list.eval(fold_polars(pl.element()))
    hits = [folded.list.contains(pl.lit(tag, dtype=pl.String)) for tag in tags]
    return pl.any_horizontal(hits) if how == "any" else pl.all_horizontal(hits)


POLARS = tree.Language(
    all=lambda parts: pl.all_horizontal(parts) if parts else pl.lit(True),
    any=lambda parts: pl.any_horizontal(parts) if parts else pl.lit(False),
    negate=lambda x: ~x, two_valued=lambda x: x.fill_null(False), compare=lambda op, a, b: COMPARISONS[op](a, b),
    value=lambda v, t: pl.lit(v, dtype=_DTYPES[t]), column=pl.col, copy=lambda c: c, fold=fold_polars,
    is_set=lambda c, t: c.list.len() > 0 if t == "list" else c.is_not_null(),
    never=lambda c: c.is_not_null() & pl.lit(False),  # as long as the column: a bare literal is one row
    isin=lambda c, values, t: c.is_in([float(v) if t == "number" else v for v in values]),  # column's type
    between=lambda c, low, high: c.is_between(low, high),
    cast=lambda c, t: c.dt.date() if t == "date" else c.cast(PL_TIMESTAMP), has=_has,
    text_test=lambda test, c, v: (c.str.contains(v, literal=True) if test == "contains"
                                  else getattr(c.str, test)(v)),
)
# Never-null expressions (see tree.py).
field_predicate = partial(tree.field_predicate, POLARS)
event_condition = partial(tree.event_condition, POLARS)
segment_predicate = partial(tree.segment_predicate, POLARS)
